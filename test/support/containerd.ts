import { access, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ContainerdClient } from '../../src/containerd/client.js'
import { CriClient } from '../../src/containerd/cri.js'
import { startProcess, type Managed } from './processes.js'
import { eventually } from './eventually.js'

export interface ContainerdNode {
  dir: string
  socket: string
  configFile: string
  registryConfigPath: string
  contentPath: string
  process: Managed
  client: ContainerdClient
  cri: CriClient
  stop(): Promise<void>
}

export interface ContainerdInit {
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string
  discardUnpackedLayers?: boolean
}

/** containerd with its own root, state, sockets and registry config path under `dir`. */
export async function startContainerd(dir: string, init: ContainerdInit = {}): Promise<ContainerdNode> {
  const registryConfigPath = join(dir, 'certs.d')
  await Promise.all(['root', 'state', 'cni', 'opt'].map((sub) => mkdir(join(dir, sub), { recursive: true })))
  await mkdir(registryConfigPath, { recursive: true })
  const configFile = join(dir, 'config.toml')
  await writeFile(configFile, containerdConfig(dir, registryConfigPath, init.discardUnpackedLayers ?? false))
  const socket = join(dir, 'containerd.sock')
  const [command, args] = init.netns
    ? ['ip', ['netns', 'exec', init.netns, 'containerd', '-c', configFile]]
    : ['containerd', ['-c', configFile]]
  const process = startProcess('containerd', command, args, join(dir, 'containerd.log'))
  const cri = new CriClient(socket)
  const client = new ContainerdClient({ socket, namespace: 'k8s.io' })
  await eventually('containerd socket', async () => {
    await access(socket)
    await cri.version()
    return true
  }, 20_000)
  return {
    dir, socket, configFile, registryConfigPath, process, client, cri,
    contentPath: join(dir, 'root', 'io.containerd.content.v1.content'),
    async stop() {
      client.close()
      cri.close()
      await process.stop()
    },
  }
}

function containerdConfig(dir: string, registryConfigPath: string, discard: boolean): string {
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"
[grpc]
  address = "${dir}/containerd.sock"
[ttrpc]
  address = "${dir}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    discard_unpacked_layers = ${discard}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${registryConfigPath}"
`
}
