import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { parseAllDocuments, stringify } from 'yaml'

export const REPO = fileURLToPath(new URL('../../../', import.meta.url))
export const CHART = join(REPO, 'chart')
const run = promisify(execFile)

export interface K8sObject {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
  spec?: Record<string, unknown>
  data?: Record<string, string>
  [key: string]: unknown
}

type ArgsFor = (valuesFile: string) => string[]

const SCRIPT_PATHS = [join(REPO, '..', 'shared', 'tools', 'helm-template.sh'), '/work/shared/tools/helm-template.sh']

/**
 * `helm template` when helm is on PATH; else HELM_TEMPLATE or ../shared/tools/helm-template.sh
 * (same output, no helm binary). With `lookup` objects, only the script can render (its
 * `--lookup`: `helm template` has no cluster, so its `lookup` always finds nothing).
 */
async function renderer(lookup: boolean): Promise<{ command: string; argsFor: ArgsFor }> {
  const helmTemplateArgs: ArgsFor = (valuesFile) => ['--name', 'shoal', '--namespace', 'shoal', '-f', valuesFile, CHART]
  const script = SCRIPT_PATHS.find((path) => existsSync(path))
  if (lookup) {
    if (!script) throw new Error('rendering with objects in the cluster needs ../shared/tools/helm-template.sh (its --lookup)')
    return { command: script, argsFor: helmTemplateArgs }
  }
  if (process.env['HELM_TEMPLATE']) return { command: process.env['HELM_TEMPLATE'], argsFor: helmTemplateArgs }
  const helm = await run('sh', ['-c', 'command -v helm']).then((result) => result.stdout.trim(), () => '')
  if (helm) return { command: helm, argsFor: (valuesFile) => ['template', 'shoal', CHART, '--namespace', 'shoal', '-f', valuesFile] }
  if (script) return { command: script, argsFor: helmTemplateArgs }
  throw new Error('no chart renderer: install helm, or set HELM_TEMPLATE to a `helm template` equivalent')
}

/**
 * Renders the chart with these values (written to a file in `dir`) and parses every object;
 * `inCluster`: objects the templates' `lookup` finds, as if already in the cluster.
 */
export async function renderChart(dir: string, name: string, values: Record<string, unknown>, inCluster: K8sObject[] = []): Promise<K8sObject[]> {
  const valuesFile = join(dir, `${name}.yaml`)
  await writeFile(valuesFile, stringify(values))
  const lookupArgs: string[] = []
  if (inCluster.length > 0) {
    const lookupFile = join(dir, `${name}-in-cluster.yaml`)
    await writeFile(lookupFile, inCluster.map((object) => stringify(object)).join('---\n'))
    lookupArgs.push('--lookup', lookupFile)
  }
  const { command, argsFor } = await renderer(inCluster.length > 0)
  const { stdout } = await run(command, [...lookupArgs, ...argsFor(valuesFile)], { maxBuffer: 32 * 1024 * 1024 }).catch((err: Error & { stderr?: string }) => {
    throw new Error(`${command} failed: ${err.stderr ?? err.message}`)
  })
  return parseAllDocuments(stdout).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`)
    return doc.toJS() as K8sObject | null
  }).filter((object): object is K8sObject => object !== null)
}
