export function fmtBytes(n) {
  if (n == null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

// Today: "14:05"; this year: "3 Dec"; else "3 Dec 2024".
export function fmtDate(iso) {
  if (!iso) return "";
  const d = new Date(iso), now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (d.getFullYear() === now.getFullYear()) return d.toLocaleDateString([], { day: "numeric", month: "short" });
  return d.toLocaleDateString([], { day: "numeric", month: "short", year: "numeric" });
}

export function fmtFullDate(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "";
}

export function addrText(a) {
  if (!a) return "";
  if (!a.name) return a.email;
  // a name with a comma or bracket is quoted, so the address field splits it back correctly
  return /[,;"<>]/.test(a.name) ? `"${a.name.replace(/["\\]/g, "")}" <${a.email}>` : `${a.name} <${a.email}>`;
}

export function addrName(a) {
  return a ? a.name || a.email : "";
}
