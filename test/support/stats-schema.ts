import assert from 'node:assert/strict'

/**
 * Checks a /stats document field by field against docs/stats.md (version 1): every field is
 * present with its type, so a renamed or dropped field fails a test.
 */
export function assertStatsSchema(doc: Record<string, unknown>): void {
  assert.equal(doc['version'], 1)
  isoDate(doc['generatedAt'], 'generatedAt')
  shape(doc['node'], 'node', { version: 'string', startedAt: 'date', registryAddress: 'string', metricsAddress: 'string', p2pAddress: 'string', peerId: 'string' })
  shape(doc['dht'], 'dht', { nodes: 'number', bootstrapPeers: 'array', lastBootstrap: 'date?', announcedKeys: 'number', announcesSent: 'number', announcesPending: 'number',
    announceFailures: 'number', droppedPackets: 'number', unauthenticatedPackets: 'number', rateLimitedPackets: 'number', storedRecords: 'number',
    recordSources: 'array', forgottenRecords: 'number', withdrawnRecords: 'number', table: 'array' })
  for (const row of (doc['dht'] as { table: unknown[] }).table) shape(row, 'dht.table[]', { id: 'string', address: 'string' })
  shape(doc['advertised'], 'advertised', { digests: 'number', tags: 'number', images: 'number', lastSync: 'date?' })
  for (const key of ['transfers', 'recent'] as const) {
    assert.ok(Array.isArray(doc[key]), `${key} is an array`)
    for (const transfer of doc[key] as unknown[]) assertTransfer(transfer, key)
  }
  assert.ok(Array.isArray(doc['served']))
  for (const served of doc['served'] as unknown[]) {
    shape(served, 'served[]', { digest: 'string', peers: 'array' })
    for (const peer of (served as { peers: unknown[] }).peers) shape(peer, 'served[].peers[]', { peer: 'string', bytes: 'number' })
  }
  assert.ok(Array.isArray(doc['bans']))
  for (const ban of doc['bans'] as unknown[]) shape(ban, 'bans[]', { peer: 'string', until: 'date' })
  shape(doc['totals'], 'totals', { received: 'number', sent: 'number', piecesVerified: 'number', piecesFailed: 'number', bans: 'number' })
  for (const source of ['local', 'peer', 'swarm', 'upstream-fallback']) {
    shape((doc['mirror'] as Record<string, unknown>)[source], `mirror.${source}`, { requests: 'number', bytes: 'number' })
  }
  shape(doc['trust'], 'trust', { mode: 'string', keys: 'array', warning: 'string?' })
  const faults = doc['faults'] as { counts: Record<string, unknown>; recent: unknown[] }
  shape(faults, 'faults', { counts: 'object', recent: 'array' })
  shape(faults.counts, 'faults.counts', { io: 'number', 'peer-unanswered': 'number', 'peer-silent': 'number', 'peer-overrun': 'number', 'peer-idle': 'number', 'content-unavailable': 'number' })
  for (const fault of faults.recent) shape(fault, 'faults.recent[]', { at: 'date', kind: 'string', detail: 'string' })
  shape(doc['content'], 'content', { available: 'boolean', lastCheck: 'date?', error: 'string?' })
  assert.equal(typeof doc['config'], 'object')
}

function assertTransfer(transfer: unknown, where: string): void {
  shape(transfer, `${where}[]`, {
    key: 'string', digest: 'string', infoHash: 'string?', role: 'string', state: 'string', error: 'string?', size: 'number', pieceLength: 'number?',
    pieces: 'number', verifiedPieces: 'number', progress: 'number', startedAt: 'date', completedAt: 'date?', finishedAt: 'date?', downloadRate: 'number',
    uploadRate: 'number', received: 'number', sent: 'number', peers: 'array', pieceSources: 'array', sources: 'array',
  })
  const view = transfer as { role: string; state: string; peers: unknown[]; pieceSources: number[]; sources: string[]; pieces: number }
  assert.ok(['download', 'seed', 'http'].includes(view.role), `role ${view.role}`)
  assert.ok(['active', 'complete', 'failed', 'abandoned'].includes(view.state), `state ${view.state}`)
  assert.equal(view.pieceSources.length, view.pieces)
  for (const source of view.pieceSources) assert.ok(source >= -1 && source < view.sources.length, `piece source ${source}`)
  for (const peer of view.peers) shape(peer, `${where}[].peers[]`, { peer: 'string', received: 'number', verified: 'number', sent: 'number', pieces: 'number', connected: 'boolean' })
}

type FieldType = 'string' | 'number' | 'boolean' | 'array' | 'object' | 'date' | 'string?' | 'number?' | 'date?'

function shape(value: unknown, where: string, fields: Record<string, FieldType>): void {
  assert.ok(value !== null && typeof value === 'object', `${where} is an object`)
  const record = value as Record<string, unknown>
  for (const [field, type] of Object.entries(fields)) {
    assert.ok(field in record, `${where}.${field} is present`)
    const item = record[field]
    const optional = type.endsWith('?')
    if (optional && (item === null || item === undefined)) continue
    const base = type.replace('?', '')
    if (base === 'array') assert.ok(Array.isArray(item), `${where}.${field} is an array`)
    else if (base === 'date') isoDate(item, `${where}.${field}`)
    else assert.equal(typeof item, base, `${where}.${field} is a ${base}`)
  }
}

function isoDate(value: unknown, where: string): void {
  assert.ok(typeof value === 'string' && !Number.isNaN(Date.parse(value)), `${where} is an ISO date`)
}

/** Parses Prometheus text exposition strictly enough to catch a malformed line; returns sample names. */
export function parsePrometheusText(text: string): Map<string, { labels: string; value: number }[]> {
  const samples = new Map<string, { labels: string; value: number }[]>()
  const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)( \d+)?$/
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue
    const match = sampleLine.exec(line)
    assert.ok(match, `not a Prometheus sample line: ${line}`)
    const list = samples.get(match[1]!) ?? []
    list.push({ labels: match[2] ?? '', value: Number(match[3]) })
    samples.set(match[1]!, list)
  }
  return samples
}
