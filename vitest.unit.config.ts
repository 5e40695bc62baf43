import { defineConfig } from 'vitest/config'

/**
 * Unit tests only (`npm run test:unit`): no I/O, no SoftHSM2, no build, so a broken rule shows in seconds.
 * `npm test` runs these too, with everything else.
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    pool: 'threads',
  },
})
