import type { Wire } from 'webtorrent'

/** Whether the peer's extended handshake (BEP 10) has arrived. */
export function hasExtendedHandshake(wire: Wire): boolean {
  const handshake = wire.peerExtendedHandshake
  return handshake !== undefined && Object.keys(handshake).length > 0
}

/** Runs `then` once the peer's extended handshake is there: at once if it already came. */
export function afterExtendedHandshake(wire: Wire, then: () => void): void {
  if (hasExtendedHandshake(wire)) return then()
  wire.on('extended', function onHandshake(name: string) {
    if (name !== 'handshake') return
    wire.off('extended', onHandshake)
    then()
  })
}

/** A TCP port the peer put under `key` in its extended handshake, if it is one. */
export function handshakePort(wire: Wire, key: string): number | undefined {
  const port = wire.peerExtendedHandshake?.[key]
  return typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined
}
