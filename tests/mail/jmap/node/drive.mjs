// jmap-jam (npm) against the gateway: session, Mailbox/get, Email/query + Email/get by reference,
// Email/set. Prints one JSON line with what it saw; the pytest side checks it.
import JamClient from "jmap-jam";

const [sessionUrl, token] = process.argv.slice(2);
const jam = new JamClient({ sessionUrl, bearerToken: token });
const accountId = await jam.getPrimaryAccount();
const [mailboxes] = await jam.api.Mailbox.get({ accountId, ids: null });
const inbox = mailboxes.list.find((m) => m.role === "inbox");
const [results] = await jam.requestMany((t) => {
  const query = t.Email.query({ accountId, filter: { inMailbox: inbox.id }, sort: [{ property: "receivedAt", isAscending: false }] });
  const get = t.Email.get({ accountId, ids: query.$ref("/ids"), properties: ["subject", "keywords"] });
  return { query, get };
});
const id = results.query.ids[0];
const [set] = await jam.api.Email.set({ accountId, update: { [id]: { "keywords/$flagged": true } } });
const [after] = await jam.api.Email.get({ accountId, ids: [id], properties: ["keywords"] });
console.log(JSON.stringify({
  accountId,
  inbox: inbox.name,
  total: inbox.totalEmails,
  subjects: results.get.list.map((e) => e.subject),
  updated: Object.keys(set.updated ?? {}),
  keywords: after.list[0].keywords,
}));
