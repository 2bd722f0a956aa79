/**
 * GET /debug: one self-contained page (no external assets, works offline behind
 * `kubectl port-forward`) that redraws itself from /stats every few seconds.
 */
export const DEBUG_REFRESH_MS = 2000
/** Piece map width in pieces; tests read the geometry back from it. */
export const PIECE_MAP_COLUMNS = 128

const STYLE = `
body { font: 13px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; background: #fafafa; }
h1 { font-size: 18px; margin: 0 0 .2em; } h2 { font-size: 15px; margin: 1.4em 0 .4em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin-bottom: .5em; } td, th { padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; color: #555; } td.num, th.num { text-align: right; white-space: nowrap; } code { font-size: 12px; }
.muted { color: #777; } .error { color: #b00; } .legend span { display: inline-block; margin-right: 1em; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
canvas.piece-map { display: block; border: 1px solid #ccc; background: #eee; margin: 2px 0 4px; image-rendering: pixelated; max-width: min(100%, 60vw); height: auto; }
form input[type=text] { width: 36em; } #measure-result { margin-top: .5em; }
`

const SCRIPT = `
const REFRESH_MS = ${DEBUG_REFRESH_MS};
const MAP_COLUMNS = ${PIECE_MAP_COLUMNS};
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}
function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}
function short(digest) { return String(digest).replace(/^sha256:/, '').slice(0, 12); }
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
const assigned = new Map();
function colour(source) {
  if (source === 'local') return '#888';
  if (!assigned.has(source)) {
    const n = assigned.size;
    assigned.set(source, n < PALETTE.length ? PALETTE[n] : 'hsl(' + ((n * 137) % 360) + ', 60%, 45%)');
  }
  return assigned.get(source);
}
function table(id, headers, rows) {
  const head = el('tr', {}, ...headers.map((h) => el('th', h.startsWith('#') ? { class: 'num' } : {}, h.replace(/^#/, ''))));
  const body = el('tbody', {}, ...rows.map((cells) => el('tr', {}, ...cells.map((cell, i) =>
    el('td', headers[i] && headers[i].startsWith('#') ? { class: 'num' } : {}, cell)))));
  const target = $(id); target.replaceChildren(rows.length ? el('table', {}, el('thead', {}, head), body) : el('p', { class: 'muted' }, 'none'));
}
function pieceMap(transfer) {
  const pieces = transfer.pieceSources.length;
  const canvas = el('canvas', { class: 'piece-map', 'data-digest': transfer.digest, 'data-pieces': pieces });
  const columns = Math.min(Math.max(pieces, 1), MAP_COLUMNS), rows = Math.ceil(pieces / columns), cell = pieces <= 512 ? 8 : pieces <= 2048 ? 5 : 3;
  canvas.width = columns * cell; canvas.height = Math.max(rows, 1) * cell;
  const context = canvas.getContext('2d');
  transfer.pieceSources.forEach((source, piece) => {
    if (source < 0) return;
    context.fillStyle = colour(transfer.sources[source]);
    context.fillRect((piece % columns) * cell, Math.floor(piece / columns) * cell, cell, cell);
  });
  return canvas;
}
function legend(transfer) {
  return el('div', { class: 'legend' }, ...transfer.peers.filter((p) => p.received > 0 || p.sent > 0).map((p) =>
    el('span', {}, el('i', { class: 'swatch', style: 'background:' + colour(p.peer) }), p.peer + ' ↓' + bytes(p.verified ?? p.received) + ' ↑' + bytes(p.sent))));
}
function transferRow(t) {
  const detail = t.role === 'download' ? el('div', {}, pieceMap(t), legend(t)) : legend(t);
  return [el('code', { title: t.digest }, short(t.digest)), t.role, t.state + (t.error ? ' (' + t.error + ')' : ''), bytes(t.size),
    Math.round(t.progress * 100) + '%', bytes(t.downloadRate) + '/s', bytes(t.uploadRate) + '/s', detail];
}
function peers(stats) {
  const byPeer = new Map();
  for (const t of [...stats.transfers, ...stats.recent]) for (const p of t.peers) {
    const row = byPeer.get(p.peer) || { received: 0, sent: 0, connected: false, transfers: 0 };
    row.received += p.received; row.sent += p.sent; row.transfers++; row.connected = row.connected || (p.connected && t.state === 'active');
    byPeer.set(p.peer, row);
  }
  const banned = new Set(stats.bans.map((b) => b.peer));
  return [...byPeer].map(([peer, r]) => [el('span', {}, el('i', { class: 'swatch', style: 'background:' + colour(peer) }), peer),
    r.connected ? 'connected' : banned.has(peer) ? 'banned' : '', r.transfers, bytes(r.received), bytes(r.sent)]);
}
function render(stats) {
  const n = stats.node, t = stats.totals;
  $('trust').textContent = stats.trust.warning || '';
  $('node').textContent = n.peerId + ' · shoal ' + n.version + ' · up since ' + n.startedAt + ' · updated ' + stats.generatedAt;
  $('totals').textContent = 'received ' + bytes(t.received) + ' · sent ' + bytes(t.sent) + ' · pieces verified ' + t.piecesVerified +
    ' · failed ' + t.piecesFailed + ' · bans ' + t.bans + ' · mirror answers: ' +
    Object.entries(stats.mirror).map(([k, v]) => k + ' ' + v.requests).join(', ');
  const moving = [...stats.transfers, ...stats.recent].filter((x) => x.role !== 'seed');
  table('transfers', ['digest', 'role', 'state', '#size', '#progress', '#down', '#up', 'pieces by source'], moving.map(transferRow));
  table('peers', ['peer', 'state', '#transfers', '#received', '#sent'], peers(stats));
  const fp = stats.firstPulls;
  $('first-pulls-summary').textContent = fp.enabled ? 'relay tree over ' + (fp.members.length + 1) + ' nodes' : 'off (--upstream-fetch=false)';
  table('first-pulls', ['digest', 'role', 'from now', '#size', '#written', 'verified', 'bytes by source', 'readers'], fp.pulls.map((p) => [el('code', { title: p.digest }, short(p.digest)),
    p.role, p.source, bytes(p.size), bytes(p.written), p.verified ? 'yes' : 'no', p.sources.map((s) => s.name + ' ' + bytes(s.bytes)).join(', '),
    p.readers.map((r) => r.reader + (r.streams > 1 ? ' ×' + r.streams : '')).join(', ')]));
  const d = stats.dht;
  $('dht-summary').textContent = d.nodes + ' nodes · ' + d.announcedKeys + ' keys announced · bootstrap ' + (d.bootstrapPeers.join(', ') || 'none') +
    ' · last bootstrap ' + (d.lastBootstrap || 'never') + ' · advertised ' + stats.advertised.images + ' images, ' + stats.advertised.digests + ' digests';
  table('dht', ['node id', 'address'], d.table.map((row) => [el('code', {}, row.id.slice(0, 16)), row.address]));
  const seeds = [...stats.transfers, ...stats.recent].filter((x) => x.role === 'seed');
  table('seeded', ['digest', 'state', '#size', '#up', 'to'], seeds.map((s) => [el('code', { title: s.digest }, short(s.digest)), s.state, bytes(s.size), bytes(s.sent), legend(s)])
    .concat(stats.served.map((s) => [el('code', { title: s.digest }, short(s.digest)), 'HTTP', '', bytes(s.peers.reduce((a, p) => a + p.bytes, 0)),
      s.peers.map((p) => p.peer + ' ' + bytes(p.bytes)).join(', ')])));
}
async function refresh() {
  try {
    const response = await fetch('stats', { cache: 'no-store' });
    if (!response.ok) throw new Error('HTTP ' + response.status);
    render(await response.json()); $('status').textContent = '';
  } catch (err) { $('status').textContent = 'cannot read /stats: ' + err.message; }
  setTimeout(refresh, REFRESH_MS);
}
$('measure').addEventListener('submit', async (event) => {
  event.preventDefault();
  const out = $('measure-result'); out.replaceChildren(el('p', { class: 'muted' }, 'pulling…'));
  try {
    const response = await fetch('debug/measure', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reference: $('reference').value }) });
    const result = await response.json();
    if (!response.ok) throw new Error(result.error || 'HTTP ' + response.status);
    out.replaceChildren(el('p', {}, result.reference + ' (' + result.platform + '): ' + bytes(result.bytes) + ' in ' + result.seconds + ' s'), el('div', { id: 'measure-table' }));
    table('measure-table', ['digest', 'kind', 'answer', '#size', '#seconds', 'sources'], result.blobs.map((b) => [el('code', { title: b.digest }, short(b.digest)),
      b.kind, b.answer, bytes(b.size), b.seconds, Object.entries(b.sources).map(([s, n]) => s + ' ' + bytes(n)).join(', ')]));
  } catch (err) { out.replaceChildren(el('p', { class: 'error' }, err.message)); }
});
refresh();
`

export const DEBUG_PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shoal debug</title><style>${STYLE}</style></head>
<body>
<h1>shoal</h1><div id="node" class="muted"></div><div id="totals"></div><div id="status" class="error"></div><div id="trust" class="error"></div>
<h2>Transfers</h2><div id="transfers"></div>
<h2>Peers</h2><div id="peers"></div>
<h2>First pulls</h2><div id="first-pulls-summary" class="muted"></div><div id="first-pulls"></div>
<h2>DHT</h2><div id="dht-summary"></div><div id="dht"></div>
<h2>Seeded blobs</h2><div id="seeded"></div>
<h2>Measure a pull</h2>
<form id="measure"><input type="text" id="reference" placeholder="registry.example.com/team/image:tag" required>
<button type="submit">pull through this node</button></form>
<div class="muted">Fetches the manifest, config and layers through this node's mirror path (as containerd would), discards the bytes.</div>
<div id="measure-result"></div>
<script>${SCRIPT}</script>
</body></html>
`
