/** Shared by the examples: print a line and keep it (examples return what they printed), run when invoked directly. */
export function printer(): { out: string[]; log: (line: string) => void } {
  const out: string[] = []
  return {
    out,
    log: (line: string) => {
      out.push(line)
      console.log(line)
    },
  }
}

/** Runs `main` when the example file is the script node was started with. */
export function runIfMain(url: string, main: () => Promise<unknown>): void {
  if (url === `file://${process.argv[1]}`) {
    main().catch((err: unknown) => {
      console.error(err)
      process.exitCode = 1
    })
  }
}
