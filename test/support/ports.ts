import { createServer } from 'node:net'

/** A TCP port that was free a moment ago on `host` (the OS picks it). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** A UDP port free on every one of `hosts` (tries ports the OS hands out until one fits all). */
export async function freeUdpPort(hosts: string[]): Promise<number> {
  const { createSocket } = await import('node:dgram')
  for (let attempt = 0; attempt < 50; attempt++) {
    const probe = createSocket('udp4')
    const port = await new Promise<number>((resolve, reject) => {
      probe.once('error', reject)
      probe.bind(0, hosts[0], () => resolve(probe.address().port))
    })
    probe.close()
    const fits = await Promise.all(hosts.map((host) => new Promise<boolean>((resolve) => {
      const socket = createSocket('udp4')
      socket.once('error', () => resolve(false))
      socket.bind(port, host, () => socket.close(() => resolve(true)))
    })))
    if (fits.every(Boolean)) return port
  }
  throw new Error(`no UDP port free on all of ${hosts.join(', ')}`)
}
