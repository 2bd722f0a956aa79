declare module 'torrent-piece' {
  /** One piece being assembled from blocks (only what shoal touches). */
  export default class Piece {
    static BLOCK_LENGTH: number
    constructor(length: number)
    readonly length: number
    set(index: number, data: Uint8Array, source: unknown): boolean
    reserveRemaining(): number
    flush(): Uint8Array | null
  }
}
