// Fidelity check: the official Azure SDK for JavaScript (@azure/keyvault-secrets +
// @azure/identity, pinned in package-lock.json) fetches secrets from tests/emulator/kvemu.py.
//
//   node sdk_check.mjs EMU_JSON PLAN_JSON
//
// EMU_JSON is the emulator's emu.json; PLAN_JSON lists the getSecret() calls and what each must
// return: [{"vault": host, "name": n, "version": v|null, "value": s, "contentType": t,
//           "expectVersion": v, "kid": k, "managed": b, "kind": "pfx"|"pem"|null}
//          | {..., "expectError": "substring"} | {"parallel": [{vault, name, value}, ...]}
//          | {"list": host}]  (listPropertiesOfSecrets: prints every item; the caller compares)
// (fields left out are not checked).
// Prints one JSON line per call and a summary; exits 0 only if every call met its expectation.
//
// The caller's environment does the rest, as it would on a VM:
//   AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:<imds_port>  (the IMDS base URL that
//     @azure/identity and MSAL honour; MSAL appends /metadata/identity/oauth2/token)
//   NODE_EXTRA_CA_CERTS=<emulator ca.pem>                            (trust the test CA)
// Vault host names stay real (https://myvault.vault.azure.net): an agent connects them to
// 127.0.0.1:<kv_port> like curl --connect-to, with SNI and certificate verification for the real
// name. TLS verification and the SDK's challenge-resource verification are left ON.

import fs from "node:fs";
import https from "node:https";
import tls from "node:tls";
import crypto from "node:crypto";
import { SecretClient } from "@azure/keyvault-secrets";
import { ManagedIdentityCredential } from "@azure/identity";

const [emuPath, planPath] = process.argv.slice(2);
const info = JSON.parse(fs.readFileSync(emuPath, "utf8"));
const plan = JSON.parse(fs.readFileSync(planPath, "utf8"));
const VAULT_SUFFIXES = [".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net",
                        ".vault.microsoftazure.de"];

// Never hang a test run.
setTimeout(() => { console.error("sdk_check: timed out"); process.exit(3); }, 90_000).unref();

const tlsSeen = { connections: 0, authorized: 0, servernames: {} };

// Like curl --connect-to: the TCP connection goes to the emulator, everything else (URL, Host
// header, SNI, certificate name check) keeps the real vault host name.
class LoopbackAgent extends https.Agent {
  createConnection(options, callback) {
    const host = options.servername || options.host;
    if (!VAULT_SUFFIXES.some((s) => host.endsWith(s))) {
      throw new Error(`sdk_check: refusing to connect ${host}: not a vault host`);
    }
    const socket = tls.connect({ ...options, host: "127.0.0.1", port: info.kv_port, servername: host,
                                 rejectUnauthorized: true }, callback);
    socket.once("secureConnect", () => {
      tlsSeen.connections += 1;
      if (socket.authorized) tlsSeen.authorized += 1;
      tlsSeen.servernames[host] = (tlsSeen.servernames[host] || 0) + 1;
    });
    return socket;
  }
}

// The value must be usable, not only equal: parse it the way a consumer would.
function checkMaterial(kind, value) {
  if (kind === "pfx") {
    tls.createSecureContext({ pfx: Buffer.from(value, "base64"), passphrase: "" });
  } else if (kind === "pem") {
    new crypto.X509Certificate(value);
    crypto.createPrivateKey(value);
  }
}

const agent = new LoopbackAgent({ keepAlive: true });
const credential = new ManagedIdentityCredential();
const clients = new Map();   // one SecretClient per vault, as an application would hold them
let failures = 0;

// {"parallel": [{vault, name, value}, ...]}: all at once with Promise.all through a fresh client,
// the way an application fetching many certificates would (each request is challenged before the
// first challenge is cached; the default agent has no socket limit).
async function parallel(step) {
  const t0 = Date.now();
  const fresh = new Map();
  const results = await Promise.allSettled(step.parallel.map(async (p) => {
    const url = `https://${p.vault}`;
    if (!fresh.has(url)) fresh.set(url, new SecretClient(url, credential, { agent: burstAgent }));
    const s = await fresh.get(url).getSecret(p.name);
    if (s.value !== p.value) throw new Error(`${p.name}: value differs`);
  }));
  const errors = results.filter((r) => r.status === "rejected").map((r) => String(r.reason).slice(0, 200));
  return { parallel: step.parallel.length, ms: Date.now() - t0, ok: errors.length === 0,
           errors: errors.slice(0, 3) };
}
const burstAgent = new LoopbackAgent({ keepAlive: true });

// {"list": host}: every page through the SDK's own paging (it follows nextLink), each item as
// the SDK reads it, Unix seconds for the dates.
async function list(step) {
  const client = new SecretClient(`https://${step.list}`, credential, { agent });
  const items = [];
  const secs = (d) => (d ? Math.floor(d.getTime() / 1000) : null);
  for await (const p of client.listPropertiesOfSecrets()) {
    items.push({ name: p.name, enabled: p.enabled, created: secs(p.createdOn),
                 updated: secs(p.updatedOn), managed: p.managed ?? null,
                 contentType: p.contentType ?? null, version: p.version ?? null });
  }
  return { list: step.list, items, ok: true };
}

for (const step of plan) {
  if (step.list) {
    console.log(JSON.stringify(await list(step)));
    continue;
  }
  if (step.parallel) {
    const result = await parallel(step);
    if (!result.ok) failures += 1;
    console.log(JSON.stringify(result));
    continue;
  }
  const url = `https://${step.vault}`;
  if (!clients.has(url)) clients.set(url, new SecretClient(url, credential, { agent }));
  const client = clients.get(url);
  const result = { vault: step.vault, name: step.name, version: step.version || null };
  try {
    const s = await client.getSecret(step.name, step.version ? { version: step.version } : {});
    result.got = { version: s.properties.version, contentType: s.properties.contentType,
                   enabled: s.properties.enabled, managed: s.properties.managed,
                   certificateKeyId: s.properties.certificateKeyId, vaultUrl: s.properties.vaultUrl };
    const problems = [];
    if (step.expectError) problems.push(`expected an error containing ${step.expectError}`);
    if (step.value !== undefined && s.value !== step.value) problems.push("value differs");
    if (step.contentType !== undefined && s.properties.contentType !== step.contentType) {
      problems.push(`contentType ${s.properties.contentType}`);
    }
    if (step.expectVersion && s.properties.version !== step.expectVersion) {
      problems.push(`version ${s.properties.version}`);
    }
    if (step.kid !== undefined && s.properties.certificateKeyId !== step.kid) {
      problems.push(`certificateKeyId ${s.properties.certificateKeyId}`);
    }
    if (step.managed !== undefined && s.properties.managed !== step.managed) {
      problems.push(`managed ${s.properties.managed}`);
    }
    if (s.properties.vaultUrl !== url) problems.push(`vaultUrl ${s.properties.vaultUrl}`);
    try {
      checkMaterial(step.kind, s.value);
    } catch (e) {
      problems.push(`material does not parse: ${e.message}`);
    }
    result.ok = problems.length === 0;
    if (!result.ok) result.problems = problems;
  } catch (e) {
    result.error = `${e.name}: ${e.message}`.slice(0, 600);
    result.ok = Boolean(step.expectError) && result.error.includes(step.expectError);
  }
  if (!result.ok) failures += 1;
  console.log(JSON.stringify(result));
}

agent.destroy();
burstAgent.destroy();
console.log(JSON.stringify({ summary: true, steps: plan.length, failures, tls: tlsSeen }));
process.exitCode = failures === 0 ? 0 : 1;
