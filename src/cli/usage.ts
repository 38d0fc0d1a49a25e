// The usage text of every subcommand (DESIGN §1): `portcullis <command> --help` prints its entry and
// exits 0; a usage error prints it after the message. Only text lives here, no behaviour.

export const USAGES: Record<string, string> = {
  serve: `usage: portcullis serve [--config PATH]

Runs the gateway until SIGTERM/SIGINT (drains in-flight requests), SIGHUP reloads the config.
  --config PATH   the config file (default: $PORTCULLIS_CONFIG, then ./gateway.yaml)
Exit 1 with one FILE:LINE:COL line per problem on stderr when the config is not valid.
`,
  check: `usage: portcullis check [--config PATH] [--json]

Validates the config exactly as serve would (secrets resolved), prints the compiled route table and
the lints. Exit 0 when valid (warnings allowed), 1 on any error.
  --config PATH   the config file (default: $PORTCULLIS_CONFIG, then ./gateway.yaml)
  --json          one JSON document {valid, findings, routes} instead of text
`,
  schema: `usage: portcullis schema

Prints the JSON Schema (draft 2020-12) of gateway.yaml, generated from the schema the loader uses.
Editors with yaml-language-server use it through a first line such as
  # yaml-language-server: $schema=./docs/gateway.schema.json
`,
  keygen: `usage: portcullis keygen [--bytes N] [--encoding hex|base64url]

Prints a new random secret: N random bytes (default 32) as hex (default) or base64url.
The text must be at least 32 characters (the gateway's minimum): --bytes 16 or more for hex,
24 or more for base64url; a smaller size exits 2.
`,
  fingerprint: `usage: portcullis fingerprint [TOKEN] [--full]

Prints the fingerprint audit lines show for TOKEN (or stdin's first line): token: + 6 hex of SHA-256.
  --full   sha256: + all 64 hex, the form a config may store instead of the secret
`,
  sign: `usage: portcullis sign --scheme worker-v1 --id ID --secret-env VAR [options] URL
       portcullis sign --scheme rfc9421 --key-id ID --secret-env VAR [options] URL

Signs one request and prints the headers to add (one "Name: value" line each), or sends it.
  -X METHOD       the method (default GET, or POST with -d)
  -d TEXT|@FILE   the body (rfc9421 signs it with content-digest)
  -H 'Name: v'    an extra header (repeatable; rfc9421 signs the request as sent)
  --send          send the request and print the response body (exit 0 on a 2xx)
  -i              with --send: print the status line and response headers too
  --cacert FILE   with --send: trust the CA certificates (PEM) in FILE for an https:// URL
The secret is read only from the environment variable VAR, never from the command line.
`,
  'derive-key': `usage: portcullis derive-key --master-env VAR --key-id ID

Prints the per-worker rfc9421 key that the scheme's derive master gives key id ID (64 hex).
`,
  mint: `usage: portcullis mint --scheme NAME --sub ID [--roles a,b] [--ttl 10m] [--key FILE] [--config PATH]

Prints a JWT for the type: jwt scheme NAME of the config: HS256 with the scheme's secret, or EdDSA /
ES256 with the PEM private key in --key for a jwks scheme.
`,
  join: `usage: portcullis join --url URL --key-id ID --psk-env VAR [--path /_portcullis/join] [--cacert FILE]

The worker side of a join: trades the join PSK (from the environment variable VAR) for this worker's
key and prints it (64 hex). URL is the gateway's base URL.
  --cacert FILE   trust the CA certificates (PEM) in FILE for an https:// URL
`,
  version: `usage: portcullis version   (or portcullis --version)

Prints "portcullis <version>".
`,
}

export const OVERVIEW = `usage: portcullis <command> [options]     (portcullis <command> --help for its options)

  serve [--config PATH]        run the gateway (config: --config, $PORTCULLIS_CONFIG, ./gateway.yaml)
  check [--config PATH] [--json]  validate the config, print the route table and lints
  schema                       print the JSON Schema of gateway.yaml (for editors)
  keygen [--bytes N] [--encoding hex|base64url]
  fingerprint [TOKEN] [--full]
  sign --scheme worker-v1|rfc9421 ... URL [--send] [--cacert FILE]
  derive-key --master-env VAR --key-id ID
  mint --scheme NAME --sub ID [--roles a,b] [--ttl 10m] [--key FILE] [--config PATH]
  join --url URL --key-id ID --psk-env VAR [--path PATH] [--cacert FILE]
  ucan did|delegate|invoke ...  UCAN 1.0 keys, delegations and request-bound invocations
  report [FILE...] [--json]    per-route checklist from audit logs, for switching enforce: report to on
  version                      print the version (also --version)
`

/** True when argv asks for help: `--help` or `-h` before any `--` terminator. */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false
    if (a === '--help' || a === '-h') return true
  }
  return false
}
