import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One process per test file: Cryptoki state is process-wide, and each file gets its own
    // C_Initialize/C_Finalize cycle (worker threads would share one library; RESULTS gotcha 2).
    pool: 'forks',
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/per-file-token.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: process.env['CI'] ? ['default', 'json'] : ['default'],
    outputFile: { json: 'test-results/vitest.json' },
  },
})
