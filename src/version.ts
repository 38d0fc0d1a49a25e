// The package's name and version, read once from package.json (the CLI's --version, portcullis_build_info).
// Never reads anything else from the file system.
import { readFileSync } from 'node:fs'

// dist/src/version.js and src/version.ts both sit two levels below the package root (the image copies
// package.json to /app beside /app/dist, so the same relative path holds there).
function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown }
    return typeof pkg.version === 'string' ? pkg.version : 'unknown'
  } catch {
    return 'unknown'
  }
}

export const VERSION = readVersion()
