// Benchmark peer: the official Azure SDK for JavaScript fetching N certificate secrets the way a
// user without kvvm would, and writing one PEM per certificate with the openssl CLI.
//
//   node tests/bench/peers/sdk_bench.mjs --emu DIR --vault HOST --names FILE --out DIR \
//        --mode sequential|parallel
//
// DIR is a running tests/emulator/kvemu.py's --dir (emu.json, ca.pem). For each name in FILE (one
// per line): SecretClient.getSecret(name) with ManagedIdentityCredential, the base64 value to a
// temporary .pfx, `openssl pkcs12 -in X -nodes -passin pass:` (one process per certificate), its
// output to OUT/<name>.pem with mode 0600. sequential awaits one name at a time; parallel is
// Promise.all over every name (each conversion starts as soon as its secret arrives).
//
// The SDK is @azure/keyvault-secrets 4.11.2 + @azure/identity 4.13.1 from
// tests/emulator/sdk/node_modules (`npm ci` there; KVVM_SDK_DIR overrides the directory).
// Pointing it at the emulator changes nothing the SDK does on its own:
//  - AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:<imds_port> (set here unless already set);
//  - trust: NODE_EXTRA_CA_CERTS=<DIR>/ca.pem if the caller set it (node reads it only at
//    start-up; a file that holds the CA among others will do), else the agent gets the CA as `ca`;
//  - the vault host name stays real (https://HOST): an https.Agent like the SDK's default one
//    (keepAlive, no socket limit, TLS session cache) connects it to 127.0.0.1:<kv_port>, like
//    curl --connect-to, with SNI and certificate verification for the real name. The SDK's
//    challenge-resource verification stays on (HOST must be a real Key Vault name).
//
// Prints one JSON line on stdout:
//   {"client":"sdk-sequential"|"sdk-parallel","n":N,"wall_s":S,"ok":K,"failed":F,"startup_s":T}
// wall_s runs from the first getSecret to the last PEM written (token included); startup_s is
// node start-up plus loading the SDK. Errors go to stderr. Exit 0 if every certificate was
// written, 1 if any failed, 2 on bad arguments or set-up.

import fs from "node:fs";
import fsp from "node:fs/promises";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileP = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const VAULT_SUFFIXES = [".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net",
                        ".vault.microsoftazure.de"];

function die(msg) {
  process.stderr.write(`sdk_bench: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const a = { mode: "sequential" };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const want = { "--emu": "emu", "--vault": "vault", "--names": "names", "--out": "out",
                   "--mode": "mode" }[k];
    if (!want || i + 1 >= argv.length) {
      die(`usage: sdk_bench.mjs --emu DIR --vault HOST --names FILE --out DIR ` +
          `--mode sequential|parallel (bad argument ${k})`);
    }
    a[want] = argv[++i];
  }
  for (const k of ["emu", "vault", "names", "out"]) if (!a[k]) die(`--${k} is required`);
  if (a.mode !== "sequential" && a.mode !== "parallel") die("--mode must be sequential or parallel");
  a.vault = a.vault.toLowerCase();
  if (!VAULT_SUFFIXES.some((s) => a.vault.endsWith(s))) die(`--vault ${a.vault}: not a Key Vault host`);
  return a;
}

const args = parseArgs(process.argv.slice(2));
const client_name = `sdk-${args.mode}`;
let info, caPem, names;
try {
  info = JSON.parse(fs.readFileSync(path.join(args.emu, "emu.json"), "utf8"));
  caPem = fs.readFileSync(path.join(args.emu, "ca.pem"), "utf8");
  names = fs.readFileSync(args.names, "utf8").split("\n").map((s) => s.trim()).filter(Boolean);
  fs.mkdirSync(args.out, { recursive: true });
} catch (e) {
  die(`set-up: ${e.message}`);
}
// Key Vault secret names; anything else could escape --out.
const bad = names.find((n) => !/^[0-9A-Za-z-]{1,127}$/.test(n));
if (bad !== undefined) die(`--names: ${JSON.stringify(bad.slice(0, 80))} is not a Key Vault secret name`);

// Before the SDK is loaded, so MSAL sees it whenever it reads it.
process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST ||= `http://127.0.0.1:${info.imds_port}`;

const sdkDir = process.env.KVVM_SDK_DIR || path.resolve(here, "../../emulator/sdk");
const requireSdk = createRequire(path.join(sdkDir, "package.json"));
let SecretClient, ManagedIdentityCredential;
try {
  ({ SecretClient } = requireSdk("@azure/keyvault-secrets"));
  ({ ManagedIdentityCredential } = requireSdk("@azure/identity"));
} catch (e) {
  die(`cannot load the SDK from ${sdkDir}/node_modules (run npm ci there): ${e.message}`);
}

// Like curl --connect-to: TCP goes to the emulator; URL, Host, SNI and the certificate name check
// keep the real vault host. Everything else is https.Agent's own createConnection (session cache).
class LoopbackAgent extends https.Agent {
  createConnection(options, callback) {
    const host = options.servername || options.host;
    if (!VAULT_SUFFIXES.some((s) => host.endsWith(s))) {
      throw new Error(`refusing to connect ${host}: not a vault host`);
    }
    return super.createConnection({ ...options, host: "127.0.0.1", port: info.kv_port,
                                     servername: host }, callback);
  }
}
// The SDK's default agent is `new https.Agent({ keepAlive: true })`: the same, plus trust.
// NODE_EXTRA_CA_CERTS is read once at node start-up; if it already holds the emulator CA, node's
// default trust is used as is, else the agent gets the CA (the variable is often set to the
// system bundle, which does not hold it).
function extraCertsHoldCa() {
  try {
    return fs.readFileSync(process.env.NODE_EXTRA_CA_CERTS || "", "utf8").includes(caPem.trim());
  } catch {
    return false;
  }
}
const agentOptions = { keepAlive: true };
if (!extraCertsHoldCa()) agentOptions.ca = caPem;
const agent = new LoopbackAgent(agentOptions);

const credential = new ManagedIdentityCredential();
const client = new SecretClient(`https://${args.vault}`, credential, { agent });

let tmpDir;
try {
  tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), "sdk-bench-"));
} catch (e) {
  die(`mkdtemp: ${e.message}`);
}

let ok = 0;
let failed = 0;
let reported = 0;

async function fetchOne(name) {
  const pfx = path.join(tmpDir, `${name}.pfx`);
  try {
    const secret = await client.getSecret(name);
    await fsp.writeFile(pfx, Buffer.from(secret.value, "base64"), { mode: 0o600 });
    const { stdout } = await execFileP("openssl", ["pkcs12", "-in", pfx, "-nodes", "-passin", "pass:"],
                                       { encoding: "buffer", maxBuffer: 16 * 1024 * 1024 });
    const pem = path.join(args.out, `${name}.pem`);
    await fsp.writeFile(pem, stdout, { mode: 0o600 });
    await fsp.chmod(pem, 0o600);          // in case the file was there before
    ok += 1;
  } catch (e) {
    failed += 1;
    if (reported++ < 10) {
      process.stderr.write(`sdk_bench: ${name}: ${String(e.message || e).split("\n")[0].slice(0, 300)}\n`);
    }
  } finally {
    await fsp.rm(pfx, { force: true });
  }
}

const startup_s = performance.now() / 1000;
const t0 = performance.now();
if (args.mode === "sequential") {
  for (const name of names) await fetchOne(name);
} else {
  await Promise.all(names.map((name) => fetchOne(name)));
}
const wall_s = (performance.now() - t0) / 1000;

agent.destroy();
await fsp.rm(tmpDir, { recursive: true, force: true });
const line = JSON.stringify({ client: client_name, n: names.length, wall_s: +wall_s.toFixed(3), ok,
                              failed, startup_s: +startup_s.toFixed(3) });
process.stdout.write(line + "\n", () => process.exit(failed === 0 && ok === names.length ? 0 : 1));
