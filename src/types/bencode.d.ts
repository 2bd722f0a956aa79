declare module 'bencode' {
  type Value = number | Uint8Array | Value[] | { [key: string]: Value }
  const bencode: {
    encode(value: unknown): Uint8Array
    decode(data: Uint8Array, start?: number, end?: number): Value
    decode(data: Uint8Array, encoding: string): unknown
  }
  export default bencode
}
