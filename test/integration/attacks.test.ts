import { attackSuite } from '../support/attack-suite.js'

attackSuite('cluster-key', 170)
