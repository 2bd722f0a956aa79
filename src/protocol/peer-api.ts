/**
 * The HTTP API between shoal nodes, beside the OCI distribution API they also speak: the
 * headers and paths both the client (mirror/peer-client) and the server (registry/) use.
 */

/** Set on answers to the local containerd: where the bytes came from (local, peer or swarm). */
export const SOURCE_HEADER = 'Shoal-Source'
/** Marks a request from another shoal node: answered from local content only, never forwarded. */
export const PEER_REQUEST_HEADER = 'Shoal-Peer-Request'
/** On a metainfo answer: the TCP port of the answering node's BitTorrent wire. */
export const WIRE_PORT_HEADER = 'Shoal-Wire-Port'
/** On a metainfo answer: the infohash of the metainfo in the body. */
export const INFOHASH_HEADER = 'Shoal-Infohash'
/**
 * `GET <METAINFO_PATH><digest>`: 200 with the blob's metainfo (bencoded torrent) if the node
 * holds the blob; 202 with no body, only the infohash and wire port headers, while it downloads it.
 */
export const METAINFO_PATH = '/shoal/v1/metainfo/'
/**
 * `GET <PIECES_PATH><digest>` with a `Range`: 206 with those bytes of the blob, from a node that
 * holds it or has verified every piece the range touches (whole-piece transfers between nodes
 * that offered it in their BitTorrent extended handshake); 404 otherwise. Peers only.
 */
export const PIECES_PATH = '/shoal/v1/pieces/'
/** Every path of shoal's own peer API; requests to them always come from a peer. */
export const PEER_API_PREFIX = '/shoal/v1/'
/**
 * `GET <FIRST_PULL_PATH><blobs|manifests>/<digest>?ns=<registry>&repo=<repository>`, optionally
 * with `Range: bytes=<from>-`: the content as this node pulls it (from upstream, or relayed from
 * a node nearer the fetcher), starting a pull if none runs; 200/206 with the bytes as they
 * arrive, the last one once the whole was verified. 403 with UPSTREAM_REFUSED_HEADER when
 * upstream refuses it to an anonymous client; 503 when this node cannot pull it now.
 */
export const FIRST_PULL_PATH = '/shoal/v1/first-pull/'
/** On a 403 first-pull answer: upstream wants credentials, so containerd must go with its own. */
export const UPSTREAM_REFUSED_HEADER = 'Shoal-Upstream-Refused'
