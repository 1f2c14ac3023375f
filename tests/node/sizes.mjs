// Sends large events through @segment/analytics-node to HOST and prints one JSON line:
// {"sizes": [...], "batches": [...], "errors": [...]}. Usage: node sizes.mjs HOST KEY COUNT
//
// Each event is padded so that JSON.stringify of the event the SDK sends is exactly
// 32,768 bytes. The SDK adds fields of its own (context.library, _metadata) after the
// caller's, so a first run through a capturing HTTP client measures what it adds.
// The padding is the letter "i": analytics-node 3.x counts an event's size as the
// pieces of encodeURI(JSON.stringify(event)) split on /%..|i/ (context-batch.ts), so
// with "i" padding its count is close to the bytes and its 480 KB batch threshold is
// reached at the 15th such event, as the SDK would reach it with real data.
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, countText] = process.argv.slice(2)
const count = Number(countText)
const TARGET = 32 * 1024

function event(index, padding) {
  return {
    userId: 'user-1',
    event: 'Large',
    messageId: `node-large-${String(index).padStart(3, '0')}`,
    timestamp: '2024-05-01T12:34:56.789Z',
    properties: { blob: 'i'.repeat(padding) },
  }
}

async function run(settings, events) {
  const analytics = new Analytics({ writeKey, flushAt: events.length, maxRetries: 0, ...settings })
  const errors = []
  analytics.on('error', (err) => errors.push(String(err && (err.code || err.message || err))))
  for (const params of events) analytics.track(params)
  await analytics.closeAndFlush({ timeout: 20000 })
  return errors
}

// The probe: what the SDK sends for an event with no padding, never leaving the process.
const probed = []
const capture = {
  async makeRequest(options) {
    probed.push(JSON.parse(options.body))
    return new Response('{}', { status: 200 })
  },
}
await run({ host: 'http://127.0.0.1:9', httpClient: capture }, [event(0, 0)])
const base = Buffer.byteLength(JSON.stringify(probed[0].batch[0]))
const padding = TARGET - base

// The real run: the events sent to HOST, each observed on its way out.
const batches = []
const sizes = []
const observing = {
  async makeRequest(options) {
    const body = JSON.parse(options.body)
    batches.push(body.batch.length)
    for (const item of body.batch) sizes.push(Buffer.byteLength(JSON.stringify(item)))
    return fetch(options.url, { method: options.method, headers: options.headers, body: options.body })
  },
}
const events = Array.from({ length: count }, (_, index) => event(index + 1, padding))
const errors = await run({ host, httpClient: observing }, events)
console.log(JSON.stringify({ sizes, batches, errors }))
