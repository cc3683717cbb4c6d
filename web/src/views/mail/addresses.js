// Address fields as people type them: "Ann <a@x.test>, b@y.test; "Doe, Jo" <jo@z.test>".
// "Ann <a@x>, b@y" -> [{name, email}]
export function parseAddresses(text) {
  const out = [];
  for (const raw of text.split(/[,;]\s*(?=(?:[^"]*"[^"]*")*[^"]*$)/)) {
    const s = raw.trim();
    if (!s) continue;
    const m = s.match(/^\s*"?([^"<]*?)"?\s*<([^>]+)>\s*$/);
    if (m) out.push({ name: m[1].trim() || null, email: m[2].trim() });
    else out.push({ name: null, email: s });
  }
  return out;
}

export const validAddress = (a) => /^[^\s@<>]+@[^\s@<>]+$/.test(a.email);

// Completion for an address field that holds several addresses: the field's text up to its last
// separator, followed by each past correspondent that matches what is typed after it and is not in the
// field yet. (A <datalist> matches the whole value, so the options carry the addresses typed before.)
export function completions(value, people, max = 50) {
  const cut = Math.max(value.lastIndexOf(","), value.lastIndexOf(";"));
  const quotes = (value.slice(0, cut + 1).match(/"/g) || []).length;
  const at = quotes % 2 ? -1 : cut; // a separator inside "Doe, Jo" is not one
  const prefix = at < 0 ? "" : value.slice(0, at + 1).trimEnd() + " ";
  const typed = value.slice(at + 1).trim().toLowerCase();
  const have = new Set(parseAddresses(value.slice(0, at + 1)).map((a) => a.email.toLowerCase()));
  const out = [];
  for (const p of people) {
    if (out.length >= max) break;
    const [addr] = parseAddresses(p);
    if (!addr || have.has(addr.email.toLowerCase())) continue;
    if (!typed || p.toLowerCase().includes(typed)) out.push(prefix + p);
  }
  return out;
}
