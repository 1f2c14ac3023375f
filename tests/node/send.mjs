// Sends one message of each Segment type through @segment/analytics-node to HOST,
// then prints one JSON line per delivery outcome. Usage: node send.mjs HOST WRITE_KEY
import { Analytics } from '@segment/analytics-node'

const [host, writeKey] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, flushAt: 3, maxRetries: 0, httpRequestTimeout: 5000 })
const results = []
analytics.on('error', (err) => results.push({ error: String(err && (err.code || err.message || err)) }))

const common = {
  timestamp: '2024-05-01T12:34:56.789Z',
  context: { ip: '203.0.113.7', page: { path: '/settings' } },
  integrations: { All: false, Mixpanel: true },
}
const calls = [
  ['identify', { userId: 'user-1', traits: { plan: 'growth', seats: 12 }, messageId: 'node-identify' }],
  ['track', { userId: 'user-1', event: 'Opened', properties: { type: 'opened', trigger: 'keyboard' }, messageId: 'node-track' }],
  ['page', { anonymousId: 'anon-1', category: 'Admin', name: 'Settings', properties: { path: '/settings' }, messageId: 'node-page' }],
  ['screen', { userId: 'user-1', name: 'Home', properties: { tab: 'inbox' }, messageId: 'node-screen' }],
  ['group', { userId: 'user-1', groupId: 'org_10234', traits: { name: 'Acme' }, messageId: 'node-group' }],
  ['alias', { userId: 'user-1', previousId: 'anon-1', messageId: 'node-alias' }],
]
for (const [method, params] of calls) {
  analytics[method]({ ...common, ...params }, (err) => {
    results.push({ messageId: params.messageId, ok: !err, error: err ? String(err.code || err.message || err) : null })
  })
}
await analytics.closeAndFlush({ timeout: 10000 })
for (const result of results) console.log(JSON.stringify(result))
