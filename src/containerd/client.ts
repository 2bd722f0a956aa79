import type { SignalOptions } from '../util/abort.js'
import protobuf from 'protobufjs'
import { grpc, isGrpcStatus, serverStream, serviceClient, socketAddress, unary } from './grpc.js'

export const DEFAULT_CONTAINERD_SOCK = '/run/containerd/containerd.sock'
export const DEFAULT_CONTAINERD_NAMESPACE = 'k8s.io'
export const DEFAULT_CALL_TIMEOUT_MS = 10_000

export interface ContainerdDescriptor {
  media_type: string
  digest: string
  size: string
}

export interface ContainerdImage {
  name: string
  labels: Record<string, string>
  target: ContainerdDescriptor | null
}

export interface ContainerdContentInfo {
  digest: string
  size: string
}

export interface ContainerdEnvelope {
  namespace: string
  topic: string
  event: { type_url: string; value: Buffer } | null
}

export interface ContainerdClientInit {
  socket?: string
  namespace?: string
  callTimeoutMs?: number
}

// Every image event payload has the image name in field 1; the other fields are not needed.
const ImageEventName = new protobuf.Type('ImageEventName').add(new protobuf.Field('name', 1, 'string'))

/** Decodes the image name of an /images/* event. Throws on malformed protobuf. */
export function decodeImageEventName(value: Uint8Array): string {
  return (ImageEventName.decode(value) as unknown as { name: string }).name
}

/** containerd's native gRPC API (images, content, events, version), scoped to one namespace. */
export class ContainerdClient {
  readonly socket: string
  readonly namespace: string
  private readonly callTimeoutMs: number
  private readonly images: grpc.Client
  private readonly content: grpc.Client
  private readonly events: grpc.Client
  private readonly versionService: grpc.Client

  constructor(init: ContainerdClientInit = {}) {
    this.socket = init.socket ?? DEFAULT_CONTAINERD_SOCK
    this.namespace = init.namespace ?? DEFAULT_CONTAINERD_NAMESPACE
    this.callTimeoutMs = init.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS
    const address = socketAddress(this.socket)
    this.images = serviceClient('containerd.services.images.v1.Images', address)
    this.content = serviceClient('containerd.services.content.v1.Content', address)
    this.events = serviceClient('containerd.services.events.v1.Events', address)
    this.versionService = serviceClient('containerd.services.version.v1.Version', address)
  }

  async version(options: SignalOptions = {}): Promise<{ version: string; revision: string }> {
    return unary(this.versionService, 'Version', {}, this.call(options.signal))
  }

  async listImages(options: SignalOptions = {}): Promise<ContainerdImage[]> {
    const response = await unary<{ images: ContainerdImage[] }>(this.images, 'List', { filters: [] }, this.call(options.signal))
    return response.images
  }

  async getImage(name: string, options: SignalOptions = {}): Promise<ContainerdImage | undefined> {
    try {
      const response = await unary<{ image: ContainerdImage | null }>(this.images, 'Get', { name }, this.call(options.signal))
      return response.image ?? undefined
    } catch (err) {
      if (isGrpcStatus(err, grpc.status.NOT_FOUND)) return undefined
      throw err
    }
  }

  async contentInfo(digest: string, options: SignalOptions = {}): Promise<ContainerdContentInfo | undefined> {
    try {
      const response = await unary<{ info: ContainerdContentInfo | null }>(this.content, 'Info', { digest }, this.call(options.signal))
      return response.info ?? undefined
    } catch (err) {
      if (isGrpcStatus(err, grpc.status.NOT_FOUND)) return undefined
      throw err
    }
  }

  /** Streams `size` bytes (0 = to the end) from `offset`. No overall deadline: large reads take long. */
  async *readContent(digest: string, offset: number, size: number, options: SignalOptions = {}): AsyncGenerator<Buffer> {
    const stream = serverStream<{ offset: string; data: Buffer }>(this.content, 'Read',
      { digest, offset: String(offset), size: String(size) }, { metadata: this.metadata(), signal: options.signal })
    let received = 0
    for await (const message of stream) {
      received += message.data.length
      yield message.data
    }
    if (size > 0 && received !== size) throw new Error(`containerd returned ${received} of ${size} bytes of ${digest}`)
  }

  /** The raw event stream (all namespaces unless filtered). Ends or throws when containerd goes away. */
  subscribe(filters: string[], options: SignalOptions = {}): AsyncGenerator<ContainerdEnvelope> {
    return serverStream<ContainerdEnvelope>(this.events, 'Subscribe', { filters }, { signal: options.signal })
  }

  close(): void {
    for (const client of [this.images, this.content, this.events, this.versionService]) client.close()
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata()
    metadata.set('containerd-namespace', this.namespace)
    return metadata
  }

  private call(signal?: AbortSignal) {
    return { metadata: this.metadata(), signal, timeoutMs: this.callTimeoutMs }
  }
}
