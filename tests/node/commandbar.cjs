// The CommandBar destination's own code and mapping-kit, run on events read with
// JSON.parse, one event per line of the file named first. For each event it writes one
// line: the SDK calls the destination makes with "Deploy via Segment" on and off
// (`window.CommandBar` recorded), and the body Segment's Webhooks destination sends
// with its default mapping (`data` = `$.`), each as JSON.stringify writes it.
// The destination is loaded as Segment's browser runtime loads it: its presets as the
// subscriptions, through generatePlugins (FQL `subscribe`, mapping-kit `transform`).
// The package exports no path to one destination, so its compiled file is required.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const { generatePlugins } = require('@segment/browser-destination-runtime/plugin')
const { transform } = require('@segment/actions-core/mapping-kit')
const { destination } = require(
  path.join(__dirname, 'node_modules/@segment/browser-destinations/dist/cjs/destinations/commandbar')
)

let calls = []
function record(name) {
  return (...args) => {
    calls.push({ call: name, args })
  }
}
globalThis.window = globalThis
window.CommandBar = {
  boot: record('boot'),
  addMetadataBatch: record('addMetadataBatch'),
  trackEvent: record('trackEvent')
}

const subscriptions = destination.presets.map((preset) => ({
  name: preset.name,
  partnerAction: preset.partnerAction,
  subscribe: preset.subscribe,
  mapping: preset.mapping,
  enabled: true
}))

async function plugins(deploy) {
  const list = generatePlugins(destination, { orgId: 'org', deploy, subscriptions }, subscriptions)
  for (const plugin of list) await plugin.load({}, {})
  return list
}

async function callsFor(list, event) {
  calls = []
  try {
    // Every plugin method is the same `evaluate`; its subscriptions decide.
    for (const plugin of list) await plugin.track({ event })
  } catch (error) {
    return 'error: ' + error.message
  }
  return JSON.stringify(calls)
}

function webhookBody(event) {
  try {
    return JSON.stringify(transform({ data: { '@path': '$.' } }, event).data)
  } catch (error) {
    return 'error: ' + error.message
  }
}

async function main() {
  const withDeploy = await plugins(true)
  const withoutDeploy = await plugins(false)
  const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n')
  const out = []
  for (const line of lines) {
    if (!line) continue
    const event = JSON.parse(line)
    out.push(
      JSON.stringify({
        deploy: await callsFor(withDeploy, event),
        noDeploy: await callsFor(withoutDeploy, event),
        webhook: webhookBody(event)
      })
    )
  }
  fs.writeFileSync(process.argv[3], out.join('\n') + '\n')
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
