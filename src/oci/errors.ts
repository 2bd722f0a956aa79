import { ShoalError } from '../util/errors.js'
/**
 * Errors a registry client can be told about. Each renders as an OCI distribution error body
 * (`{"errors":[{"code","message","detail"}]}`) in one middleware; see registry/errors.ts.
 */
export type OciErrorCode =
  | 'BLOB_UNKNOWN'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'TAG_INVALID'
  | 'RANGE_INVALID'
  | 'SIZE_INVALID'
  | 'UNSUPPORTED'
  | 'UNAVAILABLE'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNKNOWN'

export class OciError extends ShoalError {
  readonly headers: Record<string, string>
  readonly detail: Record<string, unknown> | undefined
  constructor(readonly status: number, readonly code: OciErrorCode, message: string,
    extra: { detail?: Record<string, unknown> | undefined; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause })
    this.detail = extra.detail
    this.headers = extra.headers ?? {}
  }
}

export class BlobUnknownError extends OciError {
  constructor(digest: string, why = 'blob is not available from this node or its peers', options: ErrorOptions = {}) {
    super(404, 'BLOB_UNKNOWN', why, { detail: { digest }, cause: options.cause })
  }
}

export class ManifestUnknownError extends OciError {
  constructor(reference: string, why = 'manifest is not available from this node or its peers', options: ErrorOptions = {}) {
    super(404, 'MANIFEST_UNKNOWN', why, { detail: { reference }, cause: options.cause })
  }
}

export class NameInvalidError extends OciError {
  constructor(why: string) {
    super(400, 'NAME_INVALID', why)
  }
}

export class DigestInvalidError extends OciError {
  constructor(value: string, why = 'not a digest of the form sha256:<64 hex> or sha512:<128 hex>') {
    super(400, 'DIGEST_INVALID', why, { detail: { digest: value.slice(0, 200) } })
  }
}

export class TagInvalidError extends OciError {
  constructor(value: string) {
    super(400, 'TAG_INVALID', 'tags are [A-Za-z0-9_][A-Za-z0-9._-]{0,127}', { detail: { tag: value.slice(0, 200) } })
  }
}

/** 416: malformed, multiple or unsatisfiable byte ranges. */
export class RangeInvalidError extends OciError {
  constructor(why: string, size?: number) {
    super(416, 'RANGE_INVALID', why, size === undefined ? {} : { detail: { size }, headers: { 'Content-Range': `bytes */${size}` } })
  }
}

export class UnsupportedError extends OciError {
  constructor(status: number, why: string) {
    super(status, 'UNSUPPORTED', why)
  }
}

/** 401: a request between nodes that does not prove the cluster key. */
export class UnauthorizedError extends OciError {
  constructor(why: string) {
    super(401, 'UNAUTHORIZED', `not a node of this cluster: ${why}`)
  }
}

/** 403: access to the content is denied (upstream wants credentials this node does not have). */
export class DeniedError extends OciError {
  constructor(why: string, headers: Record<string, string> = {}) {
    super(403, 'DENIED', why, { headers })
  }
}

/** A dependency (containerd, the routing layer) is not usable right now. */
export class UnavailableError extends OciError {
  constructor(why: string, options: ErrorOptions = {}) {
    super(503, 'UNAVAILABLE', why, { cause: options.cause })
  }
}

export interface OciErrorBody {
  errors: { code: string; message: string; detail?: unknown }[]
}

export function errorBody(code: OciErrorCode, message: string, detail?: unknown): OciErrorBody {
  return { errors: [detail === undefined ? { code, message } : { code, message, detail }] }
}

export const API_VERSION_HEADER = 'Docker-Distribution-API-Version'
export const API_VERSION = 'registry/2.0'

/** Raw-socket answer for requests Node's HTTP parser rejects before koa sees them. */
export function rawErrorResponse(status: number, reason: string, code: OciErrorCode, message: string, headOnly = false): string {
  const body = JSON.stringify(errorBody(code, message))
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `${API_VERSION_HEADER}: ${API_VERSION}\r\nConnection: close\r\n\r\n${headOnly ? '' : body}`
}
