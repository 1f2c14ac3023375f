// Reads one JSON document per line on stdin and writes JSON.stringify(JSON.parse(line))
// for each, one per line: the bytes Segment's Webhooks destination sends for it.
import { createInterface } from 'node:readline'

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  process.stdout.write(JSON.stringify(JSON.parse(line)) + '\n')
}
