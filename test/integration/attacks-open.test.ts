import { attackSuite } from '../support/attack-suite.js'

// The same attacks on an open swarm (no --cluster-key-file): which still work is in docs/security.md.
attackSuite('open', 180)
