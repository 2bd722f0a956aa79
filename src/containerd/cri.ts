import type { SignalOptions } from '../util/abort.js'
import { serviceClient, socketAddress, unary } from './grpc.js'
import { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_CONTAINERD_SOCK } from './client.js'

export interface CriVersion {
  version: string
  runtime_name: string
  runtime_version: string
  runtime_api_version: string
}

export interface CriImage {
  id: string
  repo_tags: string[]
  repo_digests: string[]
  size: string
}

/** The CRI (runtime.v1) calls shoal makes on containerd: config inspection, and pulls in tests. */
export class CriClient {
  private readonly runtime
  private readonly images

  constructor(readonly socket: string = DEFAULT_CONTAINERD_SOCK, private readonly callTimeoutMs = DEFAULT_CALL_TIMEOUT_MS) {
    const address = socketAddress(socket)
    this.runtime = serviceClient('runtime.v1.RuntimeService', address)
    this.images = serviceClient('runtime.v1.ImageService', address)
  }

  version(options: SignalOptions = {}): Promise<CriVersion> {
    return unary(this.runtime, 'Version', { version: 'v1' }, { signal: options.signal, timeoutMs: this.callTimeoutMs })
  }

  /** `info` of a verbose status: containerd 1.6/1.7 put their CRI plugin config JSON under `config`. */
  async statusInfo(options: SignalOptions = {}): Promise<Record<string, string>> {
    const response = await unary<{ info: Record<string, string> }>(this.runtime, 'Status', { verbose: true }, { signal: options.signal, timeoutMs: this.callTimeoutMs })
    return response.info
  }

  /** What kubelet does to pull an image. No deadline unless given: large pulls take long. */
  async pullImage(image: string, init: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<string> {
    const response = await unary<{ image_ref: string }>(this.images, 'PullImage', { image: { image } }, init)
    return response.image_ref
  }

  async removeImage(image: string, options: SignalOptions = {}): Promise<void> {
    await unary(this.images, 'RemoveImage', { image: { image } }, { signal: options.signal, timeoutMs: this.callTimeoutMs })
  }

  async listImages(options: SignalOptions = {}): Promise<CriImage[]> {
    const response = await unary<{ images: CriImage[] }>(this.images, 'ListImages', {}, { signal: options.signal, timeoutMs: this.callTimeoutMs })
    return response.images
  }

  close(): void {
    this.runtime.close()
    this.images.close()
  }
}
