// shoal talks BitTorrent over TCP only; WebRTC peers are never created.
export const RTCPeerConnection = undefined
export const RTCSessionDescription = undefined
export const RTCIceCandidate = undefined
export default {}
