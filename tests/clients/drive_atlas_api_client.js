// Drives mongodb-atlas-api-client (npm), the third-party Node.js client of the Atlas
// Administration API, against a running dbcerts for tests/blackbox/test_third_party_clients.py.
//
// Reads one JSON plan on standard input:
//   {"baseUrl": ".../api/atlas/v1.0", "projectId": "...", "calls": [CALL, ...]}
// where a CALL is either a call of the client's own API,
//   {"api": "user", "fn": "create", "args": [body, options]}
// or, for resources the client has no function for (X.509 certificates), one request through the
// client's own HTTP layer (src/httpClient.js: urllib with Digest authentication),
//   {"url": "...", "options": {...urllib options...}}.
// The API key comes from DBCERTS_PUBLIC_KEY and DBCERTS_PRIVATE_KEY (not argv, which `ps` shows).
// Prints one JSON array on standard output: per call {"value": ...} or {"error": "..."}.
// urllib does not reject on HTTP error statuses, so an Atlas error body comes back as a value,
// exactly as the client hands it to its callers.
"use strict";

const getClient = require("mongodb-atlas-api-client");
const HttpClient = require("mongodb-atlas-api-client/src/httpClient");
const urllib = require("urllib");

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  const plan = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const publicKey = process.env.DBCERTS_PUBLIC_KEY;
  const privateKey = process.env.DBCERTS_PRIVATE_KEY;
  const client = getClient({publicKey, privateKey, baseUrl: plan.baseUrl, projectId: plan.projectId});
  const transport = new HttpClient(urllib, publicKey, privateKey);

  const results = [];
  for (const call of plan.calls) {
    try {
      const value = call.url
        ? await transport.fetch(call.url, call.options || {})
        : await client[call.api][call.fn](...(call.args || []));
      results.push({value: value === undefined ? null : value});
    } catch (e) {
      results.push({error: String(e && e.stack ? e.stack : e)});
    }
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
