// `portcullis schema`: the JSON Schema (draft 2020-12) of gateway.yaml for editors (yaml-language-server),
// generated from the TypeBox declaration the loader validates with — never a second, hand-kept copy.
import { GatewayConfigSchema, SCHEME_SCHEMAS } from '../config/schema.js'
import { parse } from './args.js'

type Json = Record<string, unknown>

/**
 * The schema as plain JSON. The loader checks a scheme in two steps (its `type`, then the body of that
 * type, so errors name the right field); an editor needs the whole of it, so each scheme entry here is
 * one of the per-type bodies.
 */
export function gatewayJsonSchema(): Json {
  const root = JSON.parse(JSON.stringify(GatewayConfigSchema)) as Json
  const schemes = (root.properties as Record<string, Json> | undefined)?.schemes
  const bodies = Object.values(SCHEME_SCHEMAS).map((s) => JSON.parse(JSON.stringify(s)) as Json)
  if (schemes) {
    const entry = { oneOf: bodies }
    const patterns = schemes.patternProperties as Record<string, Json> | undefined
    if (patterns) for (const k of Object.keys(patterns)) patterns[k] = entry
    else if (typeof schemes.additionalProperties === 'object') schemes.additionalProperties = entry
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'portcullis gateway.yaml',
    description: 'Configuration of the portcullis authenticating reverse proxy (docs/configuration.md).',
    ...root,
  }
}

export function schemaText(): string {
  return JSON.stringify(gatewayJsonSchema(), null, 2) + '\n'
}

export async function run(argv: string[]): Promise<number> {
  parse(argv, {})
  process.stdout.write(schemaText())
  return 0
}
