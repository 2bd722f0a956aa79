import type { StatsDocument, TransferStats } from './stats.js'

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']

export function formatBytes(bytes: number): string {
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`
}

function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`
}

/** Columns padded to their widest cell; the last column is not padded. */
export function textTable(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return '  (none)\n'
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: string[]): string => `  ${cells.map((cell, column) => column === cells.length - 1 ? cell : cell.padEnd(widths[column]!)).join('  ')}`.trimEnd()
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`
}

function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12)
}

function sources(transfer: TransferStats): string {
  const useful = transfer.peers.filter((peer) => (transfer.role === 'seed' ? peer.sent : peer.verified) > 0)
  return useful.map((peer) => `${peer.peer} ${formatBytes(transfer.role === 'seed' ? peer.sent : peer.verified)}`).join(', ')
}

function transferRows(transfers: TransferStats[]): string[][] {
  return transfers.map((transfer) => [shortDigest(transfer.digest), transfer.role, transfer.error ? `${transfer.state}: ${transfer.error}` : transfer.state,
    formatBytes(transfer.size), `${Math.round(transfer.progress * 100)}%`, `${formatBytes(transfer.downloadRate)}/s`, `${formatBytes(transfer.uploadRate)}/s`, sources(transfer)])
}

function peerRows(stats: StatsDocument): string[][] {
  const byPeer = new Map<string, { received: number; sent: number; transfers: number; connected: boolean }>()
  for (const transfer of [...stats.transfers, ...stats.recent]) {
    for (const peer of transfer.peers) {
      const row = byPeer.get(peer.peer) ?? { received: 0, sent: 0, transfers: 0, connected: false }
      row.received += peer.received
      row.sent += peer.sent
      row.transfers++
      row.connected ||= peer.connected && transfer.state === 'active'
      byPeer.set(peer.peer, row)
    }
  }
  return [...byPeer].map(([peer, row]) => [peer, row.connected ? 'connected' : '', String(row.transfers), formatBytes(row.received), formatBytes(row.sent)])
}

/** What `shoal status` prints: the /stats document as terminal tables. */
export function renderStatus(stats: StatsDocument, now = Date.now()): string {
  const { node, dht, advertised, totals } = stats
  const uptime = formatDuration((now - Date.parse(node.startedAt)) / 1000)
  const mirror = Object.entries(stats.mirror).map(([source, counts]) => `${source} ${counts.requests}${counts.bytes ? ` (${formatBytes(counts.bytes)})` : ''}`)
  const moving = [...stats.transfers, ...stats.recent].filter((transfer) => transfer.role !== 'seed')
  const seeding = [...stats.transfers, ...stats.recent].filter((transfer) => transfer.role === 'seed')
  const transferHeaders = ['DIGEST', 'ROLE', 'STATE', 'SIZE', 'DONE', 'DOWN', 'UP', 'BYTES BY PEER']
  return [
    `node ${node.peerId}  shoal ${node.version}  up ${uptime}  registry ${node.registryAddress}  metrics ${node.metricsAddress}\n`,
    stats.trust.mode === 'open' ? `WARNING ${stats.trust.warning}\n` : `trust: cluster key ${stats.trust.keys.join(', ')}\n`,
    `dht: ${dht.nodes} nodes, ${dht.announcedKeys} keys announced, bootstrap ${dht.bootstrapPeers.join(', ') || 'none'}, last ${dht.lastBootstrap ?? 'never'}, ${dht.unauthenticatedPackets} unauthenticated packets dropped\n`,
    `advertised: ${advertised.images} images, ${advertised.digests} digests, ${advertised.tags} tags (last sync ${advertised.lastSync ?? 'never'})\n`,
    `totals: received ${formatBytes(totals.received)}, sent ${formatBytes(totals.sent)}, pieces ${totals.piecesVerified} verified / ${totals.piecesFailed} failed, bans ${totals.bans}\n`,
    `mirror answers: ${mirror.join(', ')}\n`,
    '\nTRANSFERS\n', textTable(transferHeaders, transferRows(moving)),
    '\nSEEDING\n', textTable(transferHeaders, transferRows(seeding)),
    '\nSERVED OVER HTTP\n', textTable(['DIGEST', 'TO'], stats.served.map((served) => [shortDigest(served.digest), served.peers.map((peer) => `${peer.peer} ${formatBytes(peer.bytes)}`).join(', ')])),
    '\nFIRST PULLS', stats.firstPulls.enabled ? ` (relay tree over ${stats.firstPulls.members.length + 1} nodes)\n` : ' (off: --upstream-fetch=false)\n',
    textTable(['DIGEST', 'ROLE', 'FROM NOW', 'SIZE', 'WRITTEN', 'VERIFIED', 'BYTES BY SOURCE', 'READERS'], stats.firstPulls.pulls.map((pull) => [shortDigest(pull.digest), pull.role, pull.source,
      formatBytes(pull.size), formatBytes(pull.written), pull.verified ? 'yes' : 'no', pull.sources.map((source) => `${source.name} ${formatBytes(source.bytes)}`).join(', '),
      pull.readers.map((reader) => reader.reader).join(', ')])),
    '\nPEERS\n', textTable(['PEER', 'STATE', 'TRANSFERS', 'RECEIVED', 'SENT'], peerRows(stats)),
    '\nBANNED\n', textTable(['PEER', 'UNTIL'], stats.bans.map((ban) => [ban.peer, ban.until])),
  ].join('')
}
