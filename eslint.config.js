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
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: CORE_FORBIDDEN, message: 'core depends only on its ports (DESIGN.md)' }] },
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
    files: ['test/**/*.ts', 'bench/**/*.ts', 'examples/**/*.ts', 'vitest.config.ts'],
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
    files: ['test/integration/http/**/*.ts', 'test/helpers/http.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
)
