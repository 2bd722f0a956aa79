import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { copyFile, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { PIECE_MAP_COLUMNS } from '../../src/status/debug-page.js'
import { chromium, type Browser, type Page } from 'playwright-core'
import { startLoopbackCluster, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { buildImage } from '../support/images.js'
import { removeTestDir } from '../support/processes.js'
import { eventually } from '../support/eventually.js'

/** Debian's chromium package; the wrapper in /usr/bin adds flags playwright does not need. */
const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((path) => existsSync(path))
const required = process.env['SHOAL_REQUIRE_ROOT_TESTS'] === '1'
const MiB = 1024 * 1024
const image = buildImage({ registry: 'registry.test', repository: 'debug/app', tag: 'v1', layerSizes: [128 * MiB, 1024] })

/** Coloured pixels of a digest's piece map, and how many there are when every piece is drawn (evaluated in the browser). */
function pieceMapPixels(page: Page, digest: string): Promise<{ coloured: number; total: number }> {
  return page.evaluate(`(() => {
    const canvas = document.querySelector('canvas.piece-map[data-digest="${digest}"]')
    if (!canvas) return { coloured: 0, total: 0 }
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data
    let coloured = 0
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) coloured++
    const pieces = Number(canvas.dataset.pieces)
    const cell = canvas.width / Math.min(Math.max(pieces, 1), ${PIECE_MAP_COLUMNS})
    return { coloured, total: pieces * cell * cell }
  })()`)
}

describe('the /debug page in headless Chromium during a transfer', { skip: !CHROMIUM && !required && 'Debian\'s chromium is not installed' }, () => {
  let dir: string
  let nodes: LoopbackNode[]
  let browser: Browser
  let page: Page

  before(async () => {
    assert.ok(CHROMIUM, 'chromium is installed (apt-get install chromium)')
    dir = await mkdtemp(join(tmpdir(), 'shoal-debug-page-'))
    nodes = await startLoopbackCluster({ dir, base: 100, contents: [[image], [image], []], args: (index) => index < 2 ? ['--upload-limit', '8MiB'] : [] })
    browser = await chromium.launch({ executablePath: CHROMIUM, chromiumSandbox: false, args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] })
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  })
  after(async () => {
    await browser?.close()
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  it('draws the piece map by source, the peers, the DHT table and the measure result', async () => {
    const requester = nodes[2]!
    const layer = image.layers[0]!
    await page.goto(`${requester.shoal.metricsUrl}/debug`)
    await page.fill('#reference', image.name)
    await page.click('#measure button')
    let partial = { coloured: 0, total: 0 }
    await eventually('the piece map to be part-drawn', async () => {
      partial = await pieceMapPixels(page, layer.digest)
      return partial.coloured > 0
    }, 20_000, 200)
    assert.ok(partial.coloured < partial.total, 'seen while the transfer was still running')
    assert.ok(await page.locator('#dht tbody tr').count() >= 1, 'DHT table drawn')
    const screenshot = join(dir, 'debug-page.png')
    await page.screenshot({ path: screenshot, fullPage: true })
    if (process.env['SHOAL_SCREENSHOT']) await copyFile(screenshot, process.env['SHOAL_SCREENSHOT'])
    await page.locator('#measure-table tbody tr').first().waitFor({ timeout: 60_000 })
    const rows = await page.locator('#measure-table tbody tr').allTextContents()
    assert.ok(rows.some((row) => row.includes(layer.digest.slice(7, 19)) && row.includes('swarm')), rows.join('\n'))
    await eventually('the piece map to be complete', async () => {
      const pixels = await pieceMapPixels(page, layer.digest)
      return pixels.coloured === pixels.total
    }, 10_000, 200)
    const legend = await page.locator(`canvas.piece-map[data-digest="${layer.digest}"] + .legend span`).allTextContents()
    for (const holder of nodes.slice(0, 2)) assert.ok(legend.some((entry) => entry.startsWith(holder.id)), `legend names ${holder.id}: ${legend.join(' | ')}`)
    // One row per node, whichever of its addresses it was seen at: the two holders, once each.
    await eventually('both holders in the peers table', async () => (await page.locator('#peers tbody tr').count()) >= 2, 10_000, 200)
    const peerRows = await page.locator('#peers tbody tr td:first-child').allTextContents()
    assert.deepEqual(peerRows.map((row) => row.trim()).sort(), nodes.slice(0, 2).map((node) => node.id).sort())
  })
})
