/**
 * A forward proxy for the e2e tests, run inside the control namespace and listening on a
 * unix socket, so the test process (in the host namespace) can reach the cluster network
 * without touching the host's own networking. Requests carry the absolute target URL.
 *
 *   node proxy-server.js <socket path>
 */
import { createServer, request } from 'node:http'
import { rmSync } from 'node:fs'

const socketPath = process.argv[2]
if (!socketPath) {
  process.stderr.write('usage: proxy-server <socket path>\n')
  process.exit(2)
}
rmSync(socketPath, { force: true })

const server = createServer((incoming, outgoing) => {
  let target: URL
  try {
    target = new URL(incoming.url ?? '')
    if (!target.hostname.startsWith('127.77.')) throw new Error('only the cluster network is reachable')
  } catch (err) {
    outgoing.writeHead(400).end((err as Error).message)
    return
  }
  const forward = request(target, { method: incoming.method, headers: { ...incoming.headers, host: target.host } }, (answer) => {
    outgoing.writeHead(answer.statusCode ?? 502, answer.headers)
    answer.pipe(outgoing)
  })
  forward.on('error', (err) => {
    if (!outgoing.headersSent) outgoing.writeHead(502, { 'x-proxy-error': err.message }).end(err.message)
    else outgoing.destroy()
  })
  incoming.pipe(forward)
})
server.listen(socketPath, () => process.stdout.write(`listening on ${socketPath}\n`))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
