/** `envelope-kms rotate-due`: one automatic-rotation pass, printed as JSON. */
import type { Command } from '../args.js'
import { withEngine } from '../engine.js'
import { outJson } from '../output.js'

export const ROTATE_DUE: Command = {
  help: `usage: envelope-kms rotate-due [--help]

Runs one automatic-rotation pass now: rotates every root key whose rotation policy is due and prints
{"rotated":[…],"skipped":[…],"failed":[…]} as JSON. It changes keys: there is no dry run.
`,
  options: {},
  run: async () => {
    outJson(await withEngine((e) => e.rotateDueKeys()))
    return undefined
  },
}
