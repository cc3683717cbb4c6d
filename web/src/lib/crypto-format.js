// Encrypted share links, format version 1 (docs/ENCRYPTED-LINKS.md; Python reference:
// suite/files/e2ee_format.py). WebCrypto only: HKDF-SHA256, AES-256-GCM records, PBKDF2 + AES-KW.
const subtle = globalThis.crypto.subtle;
const te = new TextEncoder();
const MAGIC = [0x53, 0x45, 0x32, 0x45]; // "SE2E"
export const VERSION = 1;
export const FIXED_LEN = 26;
export const TAG = 16;
// 256 KiB plaintext records: against 64 KiB (16), a quarter of the WebCrypto calls (each a hop to its
// thread pool and back): the encrypted upload 0.3-0.65 CPU-s/GiB cheaper in Chromium, and the
// recipient's decrypt 15.4-16.4 -> 8.4 s/GiB, 70-74 -> 145-148 MB/s, same memory (1 GiB, alternated in
// one run); 1 MiB records cost more than 64 KiB ones (bench/README.md). Files written with any record
// size (12-24) stay readable: the header says which.
export const DEFAULT_RECORD_EXP = 18;
export const PBKDF2_ITERATIONS = 600000;
export const E2EE_TYPE = "application/vnd.suite.e2ee";
const META_PAD = 256;
const MAX_META = 64 * 1024;
const MORE = new Uint8Array([0]), LAST = new Uint8Array([1]);

export class CryptoError extends Error {
  // kind: "wrong-key" | "password" | "tampered" | "format"
  constructor(kind, message) { super(message); this.kind = kind; }
}

export function b64u(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function unb64u(s) {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export const randomKey = () => crypto.getRandomValues(new Uint8Array(32));

async function hkdf(base, salt, info, bits) {
  return new Uint8Array(await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info: te.encode(info) }, base, bits));
}

// HKDF-SHA256 of the link key with the file's salt: content key, metadata key, base nonce.
export async function deriveKeys(key, salt) {
  if (key.length !== 32) throw new CryptoError("wrong-key", "The link's key is damaged.");
  const base = await subtle.importKey("raw", key, "HKDF", false, ["deriveBits"]);
  const aes = async (info) => subtle.importKey("raw", await hkdf(base, salt, info, 256), "AES-GCM", false, ["encrypt", "decrypt"]);
  return {
    content: await aes("suite-e2ee v1 content key"),
    meta: await aes("suite-e2ee v1 metadata key"),
    nonce: await hkdf(base, salt, "suite-e2ee v1 nonce", 96),
  };
}

// The base nonce XOR the record counter (96-bit big endian; counters stay below 2^48).
export function recordNonce(base, i) {
  const n = base.slice();
  for (let b = 11, c = i; b >= 6 && c > 0; b--, c = Math.floor(c / 256)) n[b] ^= c % 256;
  return n;
}

export const recordCount = (size, exp = DEFAULT_RECORD_EXP) => Math.max(1, Math.ceil(size / 2 ** exp));

// A new file's header: fixed part + encrypted, padded metadata (name, type, size).
export async function makeHeader(key, { name, type, size }, exp = DEFAULT_RECORD_EXP) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const keys = await deriveKeys(key, salt);
  const raw = te.encode(JSON.stringify({ name, type: type || "application/octet-stream", size }));
  const meta = new Uint8Array(raw.length + ((META_PAD - (raw.length % META_PAD)) % META_PAD)).fill(0x20);
  meta.set(raw);
  const fixed = new Uint8Array(FIXED_LEN);
  fixed.set(MAGIC, 0);
  fixed[4] = VERSION;
  fixed[5] = exp;
  fixed.set(salt, 6);
  new DataView(fixed.buffer).setUint32(22, meta.length + TAG);
  const ct = new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv: new Uint8Array(12), additionalData: fixed }, keys.meta, meta));
  const header = new Uint8Array(FIXED_LEN + ct.length);
  header.set(fixed);
  header.set(ct, FIXED_LEN);
  return { header, keys };
}

export async function encryptRecord(keys, i, plain, last) {
  return new Uint8Array(await subtle.encrypt(
    { name: "AES-GCM", iv: recordNonce(keys.nonce, i), additionalData: last ? LAST : MORE }, keys.content, plain));
}

// The ciphertext bytes [start, end) of `file` (header: from makeHeader) as views of the header and of
// freshly encrypted records (records are deterministic: a range made twice is the same bytes). One read
// of the plaintext for the whole range; a record cut by `start` or `end` is encrypted whole.
export async function ciphertextRange(file, header, keys, exp, start, end) {
  const R = 2 ** exp, n = recordCount(file.size, exp), H = header.length;
  const parts = [];
  let pos = start;
  if (pos < H) {
    const part = header.subarray(pos, Math.min(H, end));
    parts.push(part);
    pos += part.length;
  }
  if (pos < end) {
    const i0 = Math.floor((pos - H) / (R + TAG)), i1 = Math.floor((end - 1 - H) / (R + TAG));
    const base = i0 * R;
    const plain = new Uint8Array(await file.slice(base, Math.min(file.size, (i1 + 1) * R)).arrayBuffer());
    const recs = await Promise.all(Array.from({ length: i1 - i0 + 1 }, (_, k) => {
      const i = i0 + k;
      return encryptRecord(keys, i, plain.subarray(i * R - base, Math.min(plain.length, (i + 1) * R - base)), i === n - 1);
    }));
    for (let k = 0; k < recs.length && pos < end; k++) {
      const recStart = H + (i0 + k) * (R + TAG);
      const part = recs[k].subarray(pos - recStart, Math.min(recs[k].length, end - recStart));
      parts.push(part);
      pos += part.length;
    }
  }
  return parts;
}

// Parse and check the header: {meta, keys, exp, length}. Throws CryptoError.
export async function readHeader(bytes, key) {
  if (bytes.length < FIXED_LEN) throw new CryptoError("format", "This is not an encrypted file.");
  const fixed = bytes.subarray(0, FIXED_LEN);
  if (!MAGIC.every((b, i) => fixed[i] === b)) throw new CryptoError("format", "This is not an encrypted file.");
  if (fixed[4] !== VERSION) throw new CryptoError("format", `This file was encrypted with format version ${fixed[4]}, which this page cannot read.`);
  const exp = fixed[5];
  const metaLen = new DataView(fixed.buffer, fixed.byteOffset).getUint32(22);
  if (exp < 12 || exp > 24 || metaLen < TAG || metaLen > MAX_META) throw new CryptoError("format", "The file's header is damaged.");
  if (bytes.length < FIXED_LEN + metaLen) return null; // need more bytes
  const keys = await deriveKeys(key, fixed.slice(6, 22));
  let meta;
  try {
    const plain = await subtle.decrypt({ name: "AES-GCM", iv: new Uint8Array(12), additionalData: fixed.slice() }, keys.meta,
      bytes.slice(FIXED_LEN, FIXED_LEN + metaLen));
    meta = JSON.parse(new TextDecoder().decode(plain));
  } catch {
    throw new CryptoError("wrong-key", "Wrong or missing key: this link cannot decrypt the file. Check that you copied the whole link, including the part after #.");
  }
  if (!Number.isSafeInteger(meta.size) || meta.size < 0) throw new CryptoError("format", "The file's header is damaged.");
  return { meta, keys, exp, length: FIXED_LEN + metaLen };
}

// A TransformStream: ciphertext bytes in, plaintext records out; errors (CryptoError) on a wrong key,
// a changed, missing or added byte — before giving out the record concerned. Memory: one record plus
// whatever the reader has not yet taken. onHeader(meta) is called once the metadata decrypts.
export function decryptStream(key, onHeader = () => {}) {
  let buf = new Uint8Array(0);
  let head = null, i = 0, n = 0, R = 0;
  const append = (chunk) => {
    const b = new Uint8Array(buf.length + chunk.length);
    b.set(buf); b.set(chunk, buf.length);
    buf = b;
  };
  async function drain(controller) {
    if (!head) {
      head = await readHeader(buf, key);
      if (!head) return;
      buf = buf.slice(head.length);
      R = 2 ** head.exp;
      n = recordCount(head.meta.size, head.exp);
      onHeader(head.meta);
    }
    while (i < n) {
      const last = i === n - 1;
      const want = (last ? head.meta.size - (n - 1) * R : R) + TAG;
      if (buf.length < want) return;
      let plain;
      try {
        plain = await subtle.decrypt({ name: "AES-GCM", iv: recordNonce(head.keys.nonce, i), additionalData: last ? LAST : MORE },
          head.keys.content, buf.subarray(0, want));
      } catch {
        throw new CryptoError("tampered", `The file was changed after it was encrypted (record ${i} does not authenticate). Nothing was saved.`);
      }
      buf = buf.slice(want);
      i++;
      controller.enqueue(new Uint8Array(plain));
    }
    if (buf.length) throw new CryptoError("tampered", "The file has data after its last record: it was changed after it was encrypted.");
  }
  return new TransformStream({
    async transform(chunk, controller) { append(chunk); await drain(controller); },
    async flush() {
      if (!head || i < n) throw new CryptoError("tampered", "The file ends too early: it was cut or changed after it was encrypted.");
    },
  });
}

// ---- link fragments: "k1.<key>" or, with a password, "p1.<salt>.<AES-KW wrapped key>"
export async function passwordKeys(password, salt) {
  const base = await subtle.importKey("raw", te.encode(password.normalize("NFC")), "PBKDF2", false, ["deriveBits"]);
  const bits = new Uint8Array(await subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations: PBKDF2_ITERATIONS }, base, 512));
  const wrap = await subtle.importKey("raw", bits.slice(0, 32), "AES-KW", false, ["wrapKey", "unwrapKey"]);
  return { wrap, auth: b64u(bits.slice(32)) }; // auth: the only part of the password the server gets
}

// {fragment, auth}: auth is the share password to give the server (null without a password).
export async function makeFragment(key, password) {
  if (!password) return { fragment: "k1." + b64u(key), auth: null };
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const { wrap, auth } = await passwordKeys(password, salt);
  const k = await subtle.importKey("raw", key, "AES-GCM", true, ["encrypt"]);
  const wrapped = new Uint8Array(await subtle.wrapKey("raw", k, wrap, "AES-KW"));
  return { fragment: `p1.${b64u(salt)}.${b64u(wrapped)}`, auth };
}

export function fragmentNeedsPassword(fragment) { return fragment.replace(/^#/, "").startsWith("p1."); }

// {key, auth} from the fragment (and the password when it has one). Throws CryptoError.
export async function keyFromFragment(fragment, password) {
  const parts = (fragment || "").replace(/^#/, "").split(".");
  try {
    if (parts[0] === "k1" && parts.length === 2) {
      const key = unb64u(parts[1]);
      if (key.length === 32) return { key, auth: null };
    } else if (parts[0] === "p1" && parts.length === 3) {
      if (!password) throw new CryptoError("password", "This link needs its password.");
      const { wrap, auth } = await passwordKeys(password, unb64u(parts[1]));
      let k;
      try {
        k = await subtle.unwrapKey("raw", unb64u(parts[2]), wrap, "AES-KW", "AES-GCM", true, ["encrypt"]);
      } catch {
        throw new CryptoError("password", "Wrong password.");
      }
      return { key: new Uint8Array(await subtle.exportKey("raw", k)), auth };
    } else if (!parts[0]) {
      throw new CryptoError("wrong-key", "This link has no key (the part after #). Ask the sender for the whole link.");
    }
  } catch (e) {
    if (e instanceof CryptoError) throw e;
  }
  throw new CryptoError("wrong-key", "The link's key is damaged. Ask the sender for the whole link.");
}
