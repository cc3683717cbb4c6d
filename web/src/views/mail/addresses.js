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
