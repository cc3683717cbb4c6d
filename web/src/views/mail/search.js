// The search box's language: from: to: subject: has:attachment before: after: and free text,
// turned into a JMAP Email FilterCondition (RFC 8621 §4.4.1). Quotes keep spaces: subject:"big news".
export function parseSearch(q) {
  const filter = {};
  const words = [];
  const re = /(\w+:)?("([^"]*)"|\S+)/g;
  let m;
  while ((m = re.exec(q))) {
    const key = (m[1] || "").toLowerCase();
    const value = m[3] !== undefined ? m[3] : m[2];
    if (key === "from:") filter.from = value;
    else if (key === "to:") filter.to = value;
    else if (key === "cc:") filter.cc = value;
    else if (key === "subject:") filter.subject = value;
    else if (key === "has:" && /^attachments?$/i.test(value)) filter.hasAttachment = true;
    else if (key === "is:" && value === "unread") filter.notKeyword = "$seen";
    else if (key === "is:" && value === "flagged") filter.hasKeyword = "$flagged";
    else if ((key === "before:" || key === "after:") && !Number.isNaN(Date.parse(value))) {
      filter[key.slice(0, -1)] = new Date(value + (value.length === 10 ? "T00:00:00" : "")).toISOString().replace(/\.\d+Z$/, "Z");
    } else words.push(m[0]);
  }
  if (words.length) filter.text = words.join(" ");
  return filter;
}
