declare module 'create-torrent' {
  function createTorrent(input: unknown, opts: Record<string, unknown>, cb: (err: Error | null, torrent: Uint8Array) => void): void
  export default createTorrent
}
