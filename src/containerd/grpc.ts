import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { fileURLToPath } from 'node:url'

/** proto/ at the project root; this module runs as dist/src/containerd/grpc.js. */
export const PROTO_ROOT = fileURLToPath(new URL('../../../proto/', import.meta.url))

const PROTO_FILES = [
  'containerd/services/images/v1/images.proto',
  'containerd/services/content/v1/content.proto',
  'containerd/services/events/v1/events.proto',
  'containerd/services/version/v1/version.proto',
  'cri/runtime/v1/api.proto',
]

let loaded: grpc.GrpcObject | undefined

/** The service constructors of every proto shoal uses, loaded once. */
export function protos(): grpc.GrpcObject {
  loaded ??= grpc.loadPackageDefinition(protoLoader.loadSync(PROTO_FILES, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  }))
  return loaded
}

export function serviceClient(path: string, address: string): grpc.Client {
  let node: unknown = protos()
  for (const part of path.split('.')) node = (node as Record<string, unknown>)[part]
  const Client = node as grpc.ServiceClientConstructor
  if (typeof Client !== 'function') throw new Error(`no gRPC service ${path} in proto/`)
  return new Client(address, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 5000,
  })
}

/** `/run/containerd/containerd.sock` → `unix:///run/containerd/containerd.sock`. */
export function socketAddress(socket: string): string {
  return socket.startsWith('unix:') ? socket : `unix://${socket}`
}

type UnaryMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response: unknown) => void) => grpc.ClientUnaryCall
type StreamMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions) => grpc.ClientReadableStream<unknown>

export interface CallInit {
  metadata?: grpc.Metadata
  signal?: AbortSignal | undefined
  timeoutMs?: number
}

/** A unary call that is cancelled when `signal` aborts and fails after `timeoutMs`. */
export function unary<Response>(client: grpc.Client, method: string, request: unknown, init: CallInit = {}): Promise<Response> {
  const fn = (client as unknown as Record<string, UnaryMethod>)[method]
  if (typeof fn !== 'function') return Promise.reject(new Error(`gRPC method ${method} is not defined`))
  init.signal?.throwIfAborted()
  return new Promise<Response>((resolve, reject) => {
    const options: grpc.CallOptions = init.timeoutMs ? { deadline: Date.now() + init.timeoutMs } : {}
    const onAbort = (): void => call.cancel()
    const call = fn.call(client, request, init.metadata ?? new grpc.Metadata(), options, (err, response) => {
      init.signal?.removeEventListener('abort', onAbort)
      if (err) reject(err)
      else resolve(response as Response)
    })
    init.signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Starts a server-streaming call now and returns its messages as an async iterable; leaving
 * the loop or aborting cancels the call. An error that arrives before iteration is kept and
 * thrown, so a failed stream never looks like a complete one.
 */
export function serverStream<Message>(client: grpc.Client, method: string, request: unknown, init: CallInit = {}): AsyncGenerator<Message> {
  const fn = (client as unknown as Record<string, StreamMethod>)[method]
  if (typeof fn !== 'function') throw new Error(`gRPC method ${method} is not defined`)
  init.signal?.throwIfAborted()
  const options: grpc.CallOptions = init.timeoutMs ? { deadline: Date.now() + init.timeoutMs } : {}
  const call = fn.call(client, request, init.metadata ?? new grpc.Metadata(), options)
  let failure: Error | undefined
  call.on('error', (err: Error) => { failure ??= err })
  const onAbort = (): void => call.cancel()
  init.signal?.addEventListener('abort', onAbort, { once: true })
  return (async function* messages() {
    try {
      for await (const message of call) yield message as Message
      if (failure) throw failure
    } finally {
      init.signal?.removeEventListener('abort', onAbort)
      call.cancel()
    }
  })()
}

export function isGrpcStatus(err: unknown, code: grpc.status): boolean {
  return typeof err === 'object' && err !== null && (err as grpc.ServiceError).code === code
}

export { grpc }
