// @ts-check
import tseslint from 'typescript-eslint'

/** Folders core must never import: the arrows point one way (STYLE.md §2). */
const CORE_FORBIDDEN = [
  '**/providers/**',
  '**/store/**',
  '**/http/**',
  '**/cli/**',
  '**/pool/**',
  '**/cache/**',
  '**/config.js',
  '**/default-engine.js',
  'pkcs11js',
  'better-sqlite3',
]

const CORE_PORTS_ONLY = { group: CORE_FORBIDDEN, message: 'core depends only on its ports (DESIGN.md)' }

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bench/results/**', 'eslint.config.js'] },
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: ['./tsconfig.check.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-extraneous-class': 'off',
      '@typescript-eslint/no-non-null-assertion': 'error',
    },
  },
  // Core's own layering (docs/architecture.md). ESLint applies the last matching rule config, so each block
  // repeats the ports-only rule beside its own.
  {
    files: ['src/core/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [CORE_PORTS_ONLY] }] },
  },
  {
    // Only the facade wires the operation modules; the context may name their types.
    files: ['src/core/*.ts'],
    ignores: ['src/core/engine.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            CORE_PORTS_ONLY,
            {
              group: ['./keys/*', './wrap/*', './envelope/*', './jobs/*'],
              allowTypeImports: true,
              message: 'only engine.ts imports the operation folders (docs/architecture.md)',
            },
          ],
        },
      ],
    },
  },
  {
    // Frozen formats depend on nothing but errors and secret bytes (and the ports' types).
    files: ['src/core/format/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            CORE_PORTS_ONLY,
            {
              group: ['../*', '!../errors.js', '!../secret-bytes.js', '!../ports.js', '../*/**'],
              message: 'format/ imports only errors and secret-bytes (docs/architecture.md)',
            },
            {
              group: ['../ports.js'],
              allowTypeImports: true,
              message: 'format/ may use the ports only as types',
            },
          ],
        },
      ],
    },
  },
  {
    // Operation modules never call the facade.
    files: ['src/core/keys/**/*.ts', 'src/core/wrap/**/*.ts', 'src/core/envelope/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            CORE_PORTS_ONLY,
            {
              group: ['../engine.js'],
              message: 'operation modules never import the facade (docs/architecture.md)',
            },
          ],
        },
      ],
    },
  },
  {
    // Jobs use keys/ and wrap/, never envelope/; the scheduler names the facade's type only.
    files: ['src/core/jobs/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            CORE_PORTS_ONLY,
            { group: ['../envelope/*'], message: 'jobs/ imports keys/ and wrap/, not envelope/' },
            { group: ['../engine.js'], allowTypeImports: true, message: 'jobs/ never call the facade' },
          ],
        },
      ],
    },
  },
  {
    // Tenant key providers are a service above the facade: they use the engine's public API (an instance
    // handed to them), never the operation folders behind it.
    files: ['src/core/tenant-keys/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            CORE_PORTS_ONLY,
            {
              group: ['../keys/*', '../wrap/*', '../envelope/*', '../context.js'],
              message:
                'tenant-keys/ uses the engine facade, not the operation folders (docs/architecture.md)',
            },
            { group: ['../engine.js'], allowTypeImports: true, message: 'tenant-keys/ is handed the engine' },
          ],
        },
      ],
    },
  },
  {
    // Key synchronization is a service beside the engine: its keys are linked (external) keys reached through
    // their sources, never the engine's root keys, so it imports no operation folder nor the facade.
    files: ['src/core/sync/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            CORE_PORTS_ONLY,
            {
              group: [
                '../keys/*',
                '../wrap/*',
                '../envelope/*',
                '../tenant-keys/*',
                '../vault-keys/*',
                '../context.js',
                '../engine.js',
              ],
              message: 'sync/ uses its ports, format/ and the job system only (docs/architecture.md)',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/providers/**/*.ts', 'src/store/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/http/**', '**/cli/**', '**/config.js', '**/default-engine.js', '**/core/engine.js'],
              message: 'providers and stores implement ports; they do not reach into the engine or the edges',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/http/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/providers/**', '**/store/**', '**/pool/**', 'pkcs11js', 'better-sqlite3'],
              message: 'http only translates: it calls the engine and imports no provider or store',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'examples/**/*.ts', 'vitest.config.ts', 'vitest.unit.config.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-confusing-void-expression': 'off',
    },
  },
  {
    // Wire tests inspect untyped JSON bodies of the HTTP APIs.
    files: [
      'test/integration/http/**/*.ts',
      'test/helpers/http.ts',
      'test/helpers/qlik.ts',
      'test/integration/sdk/azure-kv-*.test.ts',
    ],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
)
