import assert from 'node:assert/strict'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Ajv } from 'ajv'
import { parse } from 'yaml'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { removeTestDir } from '../support/processes.js'
import { CHART, renderChart, type K8sObject } from './render.js'
import { flagName } from '../../src/config/options.js'
import { COMMAND_TABLES, containers, flagsOf, parseWithCli, portOf, type Container, type PodSpec } from './pod.js'
import { validateObject } from './validate.js'

const TALOS_VALUES = { shoal: { containerdRegistryConfigPath: '/etc/cri/conf.d/hosts' } }
const EVERYTHING_ON = {
  image: { digest: `sha256:${'a'.repeat(64)}` },
  commonLabels: { team: 'platform' },
  serviceMonitor: { enabled: true, labels: { release: 'prometheus' }, relabelings: [{ action: 'replace', targetLabel: 'node', sourceLabels: ['__meta_kubernetes_pod_node_name'] }] },
  grafanaDashboard: { enabled: true, annotations: { folder: 'infra' } },
  networkPolicy: { enabled: true, restrictEgress: true, metricsFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }] },
  podAnnotations: { 'example.com/a': 'b' },
  imagePullSecrets: [{ name: 'pull' }],
  nodeSelector: { 'kubernetes.io/os': 'linux' },
  service: { registry: { topologyAwareHints: true } },
  shoal: {
    logLevel: 'debug', mirroredRegistries: ['https://docker.io', 'https://ghcr.io', 'http://10.0.0.9:5000'], additionalMirrorTargets: ['https://cache.example.com'],
    registryFilters: ['^docker\\.io/library/', ':latest$'], prependExisting: true, uploadLimit: '100MiB', swarmMinSize: '64MiB', pieceMemory: '32MiB', stallTimeout: '20s', mirrorResolveTimeout: '1s',
    containerdConfigFile: '/etc/containerd/custom/config.toml',
  },
}
/** The Spegel chart's keys that mean the same in shoal's. */
const SPEGEL_KEYS = ['containerdSock', 'containerdNamespace', 'containerdRegistryConfigPath', 'containerdContentPath', 'mirroredRegistries',
  'additionalMirrorTargets', 'resolveTags', 'prependExisting', 'registryFilters', 'mirrorResolveTimeout', 'logLevel', 'containerdMirrorAdd']

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((object) => object.kind === kind && object.metadata.name === name)
  assert.ok(found, `${kind}/${name} is rendered (have ${objects.map((object) => `${object.kind}/${object.metadata.name}`).join(', ')})`)
  return found
}

function podSpec(object: K8sObject): PodSpec {
  return (object.spec as { template: { spec: PodSpec } }).template.spec
}

describe('the Helm chart', () => {
  let dir: string
  let defaults: Record<string, unknown>
  let rendered: Record<'defaults' | 'talos' | 'everything', K8sObject[]>

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-chart-'))
    defaults = parse(await readFile(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>
    rendered = {
      defaults: await renderChart(dir, 'defaults', {}),
      talos: await renderChart(dir, 'talos', TALOS_VALUES),
      everything: await renderChart(dir, 'everything', EVERYTHING_ON),
    }
  })
  after(() => removeTestDir(dir))

  it('values.schema.json accepts the default, Talos and all-features values and rejects bad ones', async () => {
    const validate = new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(await readFile(join(CHART, 'values.schema.json'), 'utf8')) as object)
    for (const values of [defaults, TALOS_VALUES, EVERYTHING_ON]) assert.ok(validate(values), JSON.stringify(validate.errors))
    for (const bad of [{ spegel: { logLevel: 'info' } }, { shoal: { logLevel: 'loud' } }, { shoal: { uploadLimit: 'lots' } }, { shoal: { stallTimeout: '10' } },
      { shoal: { containerdRegistryConfigPath: 'relative/path' } }, { service: { p2p: { port: 70000 } } }, { shoal: { mirroredRegistries: ['docker.io'] } }]) {
      assert.equal(validate(bad), false, `rejects ${JSON.stringify(bad)}`)
    }
  })

  it('renders objects that validate against the Kubernetes schemas, for every set of values', () => {
    for (const [name, objects] of Object.entries(rendered)) {
      assert.ok(objects.length >= 7, `${name}: ${objects.length} objects`)
      for (const object of objects) validateObject(object)
    }
    const broken = structuredClone(find(rendered.defaults, 'DaemonSet', 'shoal'))
    podSpec(broken).containers[0]!.ports![0]!.containerPort = 'five thousand' as unknown as number
    assert.throws(() => validateObject(broken), /invalid/, 'the validation can fail')
  })

  it('passes only flags the binary has, with values it parses', () => {
    for (const objects of Object.values(rendered)) {
      for (const container of containers(objects)) parseWithCli(container)
    }
    const registry = containers(rendered.defaults).find((container) => container.name === 'registry')!
    assert.throws(() => parseWithCli({ ...registry, args: [...registry.args!, '--swarm-minimum-size=1MiB'] }), /--swarm-minimum-size is not a flag of shoal registry/)
  })

  it('maps every shoal.* value to a flag, and keeps Spegel\'s names', () => {
    const shoalValues = Object.keys(defaults['shoal'] as object)
    for (const key of SPEGEL_KEYS) assert.ok(shoalValues.includes(key), `shoal.${key}`)
    const everything = containers(rendered.everything)
    const flags = new Set(everything.flatMap((container) => [...flagsOf(container).keys()]))
    const notFlags: Record<string, string> = { containerdMirrorAdd: 'configuration', additionalMirrorTargets: 'mirror-targets', clusterKey: 'cluster-key-file' }
    for (const key of shoalValues) {
      const flag = notFlags[key] ?? key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)
      if (key === 'containerdMirrorAdd') assert.ok(everything.some((container) => container.name === flag))
      else assert.ok(flags.has(flag), `shoal.${key} reaches --${flag}`)
    }
    const registryFlags = flagsOf(everything.find((container) => container.name === 'registry')!)
    assert.equal(registryFlags.get('upload-limit'), '100MiB')
    assert.equal(registryFlags.get('registry-filters'), '^docker\\.io/library/,:latest$')
  })

  it('docs/configuration.md documents every flag of every command and every shoal.* value', async () => {
    const doc = await readFile(join(CHART, '..', 'docs', 'configuration.md'), 'utf8')
    for (const table of Object.values(COMMAND_TABLES)) {
      for (const key of Object.keys(table)) assert.ok(doc.includes(`\`--${flagName(key)}\``), `--${flagName(key)} is documented`)
    }
    for (const key of Object.keys(defaults['shoal'] as object)) assert.ok(doc.includes(`\`shoal.${key}\``), `shoal.${key} is documented`)
  })

  it('creates the cluster key as a Secret kept across upgrades and uninstall, mounts it and passes it; or uses an existing one; or none', async () => {
    const registryOf = (objects: K8sObject[]) => podSpec(find(objects, 'DaemonSet', 'shoal')).containers.find((container) => container.name === 'registry')!
    const secret = find(rendered.defaults, 'Secret', 'shoal-cluster-key') as K8sObject & { data: Record<string, string> }
    assert.equal(secret.metadata.annotations?.['helm.sh/resource-policy'], 'keep')
    const key = Buffer.from(secret.data['cluster.key']!, 'base64').toString('utf8')
    assert.match(key, /^[A-Za-z0-9]{64}\n$/)
    const keyPath = flagsOf(registryOf(rendered.defaults)).get('cluster-key-file')!
    const mount = registryOf(rendered.defaults).volumeMounts!.find((entry) => keyPath.startsWith(`${entry.mountPath}/`))!
    assert.ok(mount?.readOnly, 'the key is mounted read-only')
    const volume = podSpec(find(rendered.defaults, 'DaemonSet', 'shoal')).volumes!.find((entry) => entry.name === mount.name) as { secret?: { secretName: string } }
    assert.equal(volume.secret?.secretName, 'shoal-cluster-key')
    // An upgrade: the Secret made by the install is in the cluster, and its key is kept, not made anew.
    const installed = { ...secret, data: { 'cluster.key': Buffer.from(`${'k'.repeat(64)}\n`).toString('base64') } }
    const upgraded = find(await renderChart(dir, 'upgrade', {}, [installed]), 'Secret', 'shoal-cluster-key') as K8sObject & { data: Record<string, string> }
    assert.equal(upgraded.data['cluster.key'], installed.data['cluster.key'], 'the upgrade replaced the cluster key')
    assert.notEqual(find(await renderChart(dir, 'install-again', {}), 'Secret', 'shoal-cluster-key').data?.['cluster.key'], secret.data['cluster.key'], 'premise: a fresh install makes a new key')
    const existing = await renderChart(dir, 'existing-key', { shoal: { clusterKey: { existingSecret: 'my-key' } } })
    assert.ok(!existing.some((object) => object.kind === 'Secret'), 'no Secret is made when one is given')
    const existingVolumes = podSpec(find(existing, 'DaemonSet', 'shoal')).volumes as { secret?: { secretName: string } }[]
    assert.ok(existingVolumes.some((entry) => entry.secret?.secretName === 'my-key'))
    const open = await renderChart(dir, 'open', { shoal: { clusterKey: { create: false } } })
    assert.ok(!flagsOf(registryOf(open)).has('cluster-key-file'), 'without a key the swarm is open (the daemon warns)')
    assert.ok(!open.some((object) => object.kind === 'Secret'))
  })

  it('lines up ports, probes and Services with the flags, and the mirror targets with hostPort and NodePort', () => {
    const objects = rendered.defaults
    const spec = podSpec(find(objects, 'DaemonSet', 'shoal'))
    const registry = spec.containers.find((container) => container.name === 'registry')!
    const flags = flagsOf(registry)
    const port = (name: string): { containerPort: number; hostPort?: number; protocol?: string } => registry.ports!.find((entry) => entry.name === name)!
    assert.equal(port('registry').containerPort, portOf(flags.get('registry-addr')!))
    assert.equal(port('metrics').containerPort, portOf(flags.get('metrics-addr')!))
    assert.equal(port('p2p-tcp').containerPort, portOf(flags.get('p2p-addr')!))
    assert.equal(port('p2p-udp').containerPort, portOf(flags.get('p2p-addr')!))
    assert.equal(port('p2p-udp').protocol, 'UDP')
    assert.match(flags.get('p2p-addr')!, /^\$\(POD_IP\):/)
    assert.deepEqual(registry.env!.map((env) => env.name), ['POD_IP'])
    for (const probe of [registry.readinessProbe, registry.livenessProbe, registry.startupProbe]) assert.equal(probe!.httpGet.port, 'registry')
    assert.equal(registry.readinessProbe!.httpGet.path, '/readyz')
    assert.equal(registry.livenessProbe!.httpGet.path, '/livez')
    const nodePort = find(objects, 'Service', 'shoal-registry').spec as { type: string; internalTrafficPolicy: string; ports: { nodePort: number; targetPort: string }[] }
    assert.equal(nodePort.type, 'NodePort')
    assert.equal(nodePort.internalTrafficPolicy, 'Local')
    const init = spec.initContainers!.find((container) => container.name === 'configuration')!
    assert.equal(flagsOf(init).get('mirror-targets'), `http://$(NODE_IP):${port('registry').hostPort},http://$(NODE_IP):${nodePort.ports[0]!.nodePort}`)
    const bootstrap = find(objects, 'Service', 'shoal-bootstrap').spec as { clusterIP: string; publishNotReadyAddresses: boolean; ports: { port: number; protocol: string }[] }
    assert.equal(bootstrap.clusterIP, 'None')
    assert.equal(bootstrap.publishNotReadyAddresses, true)
    assert.deepEqual(bootstrap.ports.map((entry) => `${entry.port}/${entry.protocol}`), [`${port('p2p-tcp').containerPort}/TCP`, `${port('p2p-udp').containerPort}/UDP`])
    assert.equal(flags.get('bootstrap-kind'), 'dns')
    assert.equal(flags.get('dns-bootstrap-domain'), 'shoal-bootstrap.shoal.svc.cluster.local.')
    assert.equal(spec.priorityClassName, 'system-node-critical')
    assert.deepEqual(spec.tolerations, [{ operator: 'Exists' }])
    assert.ok(registry.resources?.limits?.memory, 'a memory limit is set')
  })

  for (const [name, expectedConfigPath, expectedConfigFile] of [['defaults', '/etc/containerd/certs.d', '/etc/containerd/config.toml'],
    ['talos', '/etc/cri/conf.d/hosts', '/etc/cri/containerd.toml']] as const) {
    it(`mounts every host path a flag names at that path (${name} values)`, () => {
      const objects = rendered[name]
      const spec = podSpec(find(objects, 'DaemonSet', 'shoal'))
      for (const container of [...spec.initContainers!, ...spec.containers]) {
        const flags = flagsOf(container)
        assert.equal(flags.get('containerd-registry-config-path'), expectedConfigPath)
        assert.equal(flags.get('containerd-config-file'), expectedConfigFile)
        const paths = ['containerd-sock', 'containerd-content-path', 'containerd-registry-config-path', 'data-dir'].map((flag) => flags.get(flag))
          .concat([dirname(flags.get('containerd-config-file')!)]).filter((path): path is string => path !== undefined)
        for (const path of paths) assertHostMount(spec, container, path)
      }
      const registry = spec.containers[0]!
      assert.equal(registry.volumeMounts!.find((mount) => mount.mountPath === flagsOf(registry).get('containerd-content-path'))!.readOnly, true)
      const cleanup = podSpec(find(objects, 'DaemonSet', 'shoal-cleanup')).containers[0]!
      assert.equal(flagsOf(cleanup).get('containerd-registry-config-path'), expectedConfigPath)
      assertHostMount(podSpec(find(objects, 'DaemonSet', 'shoal-cleanup')), cleanup, expectedConfigPath)
    })
  }

  it('selects the registry pods and the cleanup pods apart, in every Service and DaemonSet', () => {
    const objects = rendered.everything
    const podLabels = (name: string): Record<string, string> => (find(objects, 'DaemonSet', name).spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels
    const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean => Object.entries(selector).every(([key, value]) => labels[key] === value)
    const registry = podLabels('shoal')
    const cleanup = podLabels('shoal-cleanup')
    for (const name of ['shoal-bootstrap', 'shoal-registry', 'shoal-metrics']) {
      const selector = (find(objects, 'Service', name).spec as { selector: Record<string, string> }).selector
      assert.ok(matches(selector, registry) && !matches(selector, cleanup), `${name} selects the registry pods only`)
    }
    const cleanupSelector = (find(objects, 'Service', 'shoal-cleanup').spec as { selector: Record<string, string> }).selector
    assert.ok(matches(cleanupSelector, cleanup) && !matches(cleanupSelector, registry))
    const daemonSelector = (find(objects, 'DaemonSet', 'shoal').spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels
    assert.ok(!matches(daemonSelector, cleanup), 'the main DaemonSet does not claim cleanup pods')
  })

  it('runs the cleanup after uninstall: a DaemonSet and a Job that waits for it, found through a headless Service', () => {
    const objects = rendered.defaults
    const hooks = objects.filter((object) => object.metadata.annotations?.['helm.sh/hook'] === 'post-delete')
    assert.deepEqual(hooks.map((object) => object.kind).sort(), ['DaemonSet', 'Job', 'Service'])
    const cleanup = podSpec(find(objects, 'DaemonSet', 'shoal-cleanup')).containers[0]!
    const wait = podSpec(find(objects, 'Job', 'shoal-cleanup-wait')).containers[0]!
    assert.equal(portOf(flagsOf(cleanup).get('probe-addr')!), Number(flagsOf(wait).get('probe-port')))
    assert.equal(flagsOf(wait).get('dns-domain'), 'shoal-cleanup.shoal.svc.cluster.local.')
    assert.equal((find(objects, 'Service', 'shoal-cleanup').spec as { publishNotReadyAddresses: boolean }).publishNotReadyAddresses, true)
  })

  it('with every option on: ServiceMonitor on the metrics Service, a dashboard of metrics shoal exports, a NetworkPolicy for the peer ports and the way out first pulls need', () => {
    const objects = rendered.everything
    const monitor = find(objects, 'ServiceMonitor', 'shoal').spec as { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] }
    const metricsService = find(objects, 'Service', 'shoal-metrics')
    for (const [key, value] of Object.entries(monitor.selector.matchLabels)) assert.equal(metricsService.metadata.labels![key], value)
    assert.equal(monitor.endpoints[0]!.port, 'metrics')
    const dashboard = JSON.parse(find(objects, 'ConfigMap', 'shoal-dashboard').data!['shoal.json']!) as { panels: { targets: { expr: string }[] }[] }
    const exported = new Set(createMetricsRegistry().registry.getMetricsAsArray().map((metric) => metric.name))
    const used = dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr)).flatMap((expr) => expr.match(/\b(shoal|process|nodejs)_[a-z_]+/g) ?? [])
    assert.ok(used.length >= 10)
    for (const metric of used) assert.ok(exported.has(metric.replace(/_(bucket|sum|count)$/, '')), `dashboard metric ${metric} is exported`)
    const policy = find(objects, 'NetworkPolicy', 'shoal').spec as { ingress: { from?: unknown[]; ports: { port: number; protocol: string }[] }[] }
    const peerRule = policy.ingress.find((rule) => rule.from?.some((peer) => JSON.stringify(peer).includes('podSelector')))!
    assert.deepEqual(peerRule.ports.map((entry) => `${entry.port}/${entry.protocol}`).sort(), ['5001/TCP', '5001/UDP'])
    const egress = (policy as unknown as { egress: { to?: { ipBlock?: { cidr: string } }[]; ports: { port: number }[] }[] }).egress
    const upstreamRule = egress.find((rule) => rule.to?.some((peer) => peer.ipBlock))
    assert.deepEqual(upstreamRule?.ports.map((entry) => entry.port), [443, 80], 'first pulls may reach the registries')
    assert.ok(egress.some((rule) => rule.ports.some((entry) => entry.port === 53)), 'DNS is allowed out')
    const image = podSpec(find(objects, 'DaemonSet', 'shoal')).containers[0]!.image
    assert.equal(image, `ghcr.io/shoal-project/shoal@sha256:${'a'.repeat(64)}`)
  })
})

function assertHostMount(spec: PodSpec, container: Container, path: string): void {
  const mount = container.volumeMounts!.find((entry) => entry.mountPath === path)
  assert.ok(mount, `${container.name} mounts ${path}`)
  const volume = spec.volumes!.find((entry) => entry.name === mount.name)
  assert.equal(volume?.hostPath?.path, path, `${container.name}: volume ${mount.name} is the host's ${path}`)
}
