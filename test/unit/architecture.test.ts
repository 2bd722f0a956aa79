import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'

const repo = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..')
const srcDir = join(repo, 'src')

/**
 * The layers of src/, lowest first. A folder may import from its own layer's folder and from
 * lower layers, never from a higher one. README's "Architecture" section lists the same order.
 */
export const LAYERS: string[][] = [
  ['util', 'types', 'stubs'],
  ['oci'],
  ['observe'],
  ['net'],
  ['protocol'],
  ['content'],
  ['containerd'],
  ['upstream'],
  ['routing'],
  ['swarm'],
  ['mirror'],
  ['registry'],
  ['status'],
  ['config'],
  ['node'],
  ['commands'],
  ['demo'],
  ['main.ts'],
]

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return sourceFiles(path)
    return path.endsWith('.ts') ? [path] : []
  })
}

/** Relative imports of a file (static, dynamic and re-exports), as absolute .ts paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const specifiers = [...text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((match) => match[1]!)
  return specifiers.map((specifier) => resolve(dirname(file), specifier.replace(/\.js$/, '.ts')))
}

function folderOf(file: string): string {
  return relative(srcDir, file).split('/')[0]!
}

const rank = new Map(LAYERS.flatMap((folders, index) => folders.map((folder) => [folder, index] as const)))
const files = sourceFiles(srcDir)
const graph = new Map(files.map((file) => [file, importsOf(file)]))

type Graph = Map<string, string[]>

function upwardImports(imports: Graph): string[] {
  return [...imports].flatMap(([file, targets]) => targets.filter((target) => rank.get(folderOf(target))! > rank.get(folderOf(file))!)
    .map((target) => `${relative(srcDir, file)} -> ${relative(srcDir, target)}`))
}

/** Every import cycle between files, each as the list of files on it. */
function cycles(imports: Graph): string[][] {
  const found: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (file: string): void => {
    state.set(file, 'open')
    path.push(file)
    for (const next of imports.get(file) ?? []) {
      if (state.get(next) === 'open') found.push(path.slice(path.indexOf(next)).map((f) => relative(srcDir, f)))
      else if (!state.has(next)) visit(next)
    }
    path.pop()
    state.set(file, 'done')
  }
  for (const file of imports.keys()) if (!state.has(file)) visit(file)
  return found
}

/**
 * Where a library's private members are touched outside its `*-internals.ts` door: `._member`,
 * `['_member']`, or an assignment to a prototype. Comments are skipped; a subclass's own
 * `_read()` method is a declaration, not an access.
 */
export function privateAccesses(path: string, text: string): string[] {
  if (path.endsWith('-internals.ts') || path.includes('/types/')) return []
  return text.split('\n').flatMap((line, index) => {
    const code = line.replace(/^\s*(\/\/|\*|\/\*\*).*$/, '').replace(/'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`/g, "''")
    const found = /\._[A-Za-z]/.test(code) || /\[\s*['"`]_[A-Za-z]/.test(line) || /\.prototype\b[^\n;]*[^=!<>]=(?![=>])/.test(code)
    return found ? [`${path}:${index + 1}: ${line.trim()}`] : []
  })
}

describe('architecture: one door per library', () => {
  it('touches private members and prototypes only in *-internals.ts', () => {
    assert.deepEqual(files.flatMap((file) => privateAccesses(relative(srcDir, file), readFileSync(file, 'utf8'))), [])
  })

  it('the checker sees each form of access, and not a method declaration or a comment', () => {
    const flagged = (text: string): boolean => privateAccesses('swarm/x.ts', text).length > 0
    assert.ok(flagged('wire._onRequest = () => {}'))
    assert.ok(flagged("const timer = wire['_timeout']"))
    assert.ok(flagged('(Piece.prototype as { flush: unknown }).flush = f'))
    assert.ok(flagged('Piece.prototype.flush = f'))
    assert.ok(!flagged('  override _read(): void {'))
    assert.ok(!flagged('  // replaces wire._onRequest'))
    assert.ok(!flagged("const dir = '_backup'"))
    assert.ok(!flagged('if (Wire.prototype.request === request) return'))
    assert.equal(privateAccesses('swarm/bt-internals.ts', 'wire._onRequest = f').length, 0)
  })
})

describe('architecture: the layer rule', () => {
  it('places every folder of src/ in a layer', () => {
    const unplaced = [...new Set(files.map(folderOf))].filter((folder) => !rank.has(folder))
    assert.deepEqual(unplaced, [], 'add new folders to LAYERS here and to the Architecture section of README.md')
  })

  it('has no import from a higher layer', () => {
    assert.deepEqual(upwardImports(graph), [])
  })

  it('has no import cycle between files', () => {
    assert.deepEqual(cycles(graph), [])
  })

  it('imports only files that exist', () => {
    const missing = files.flatMap((file) => graph.get(file)!.filter((target) => !graph.has(target) && !target.includes('/stubs/'))
      .map((target) => `${relative(srcDir, file)} -> ${relative(srcDir, target)}`))
    assert.deepEqual(missing, [])
  })

  it('is the order README.md documents', () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8')
    const section = readme.split(/^## Architecture$/m)[1]?.split(/^## /m)[0] ?? ''
    const documented = [...section.matchAll(/^\| \d+ \| ([^|]+) \|/gm)].map((match) => match[1]!.split(',').map((name) => name.trim().replace(/`/g, '').replace(/\/$/, '')))
    assert.deepEqual(documented, LAYERS)
  })
})

describe('architecture: the checker itself', () => {
  const at = (path: string): string => join(srcDir, path)

  it('reports an import from a higher layer, and not one from a lower layer', () => {
    const imports: Graph = new Map([[at('oci/a.ts'), [at('registry/b.ts')]], [at('registry/b.ts'), [at('oci/a.ts')]]])
    assert.deepEqual(upwardImports(imports), ['oci/a.ts -> registry/b.ts'])
  })

  it('reports a cycle, also within one folder', () => {
    const imports: Graph = new Map([[at('swarm/a.ts'), [at('swarm/b.ts')]], [at('swarm/b.ts'), [at('swarm/c.ts')]], [at('swarm/c.ts'), [at('swarm/a.ts')]]])
    assert.deepEqual(cycles(imports), [['swarm/a.ts', 'swarm/b.ts', 'swarm/c.ts']])
  })

  it('parses static, dynamic and re-export imports', () => {
    assert.ok(importsOf(at('main.ts')).some((target) => folderOf(target) === 'commands'))
  })
})
