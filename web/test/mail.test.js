// Pure parts of the mail views, run by node's test runner (tests/e2e/test_web_units.py runs them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSearch } from "../src/views/mail/search.js";
import { completions, parseAddresses, validAddress } from "../src/views/mail/addresses.js";
import { addrText, fmtBytes } from "../src/lib/format.js";

test("search operators become a JMAP FilterCondition", () => {
  assert.deepEqual(parseSearch("from:billing invoice 2041"), { from: "billing", text: "invoice 2041" });
  assert.deepEqual(parseSearch('subject:"big news" to:bob@x.test has:attachment'),
    { subject: "big news", to: "bob@x.test", hasAttachment: true });
  assert.deepEqual(parseSearch("after:2026-01-02 before:2026-02-01"), {
    after: new Date("2026-01-02T00:00:00").toISOString().replace(/\.\d+Z$/, "Z"),
    before: new Date("2026-02-01T00:00:00").toISOString().replace(/\.\d+Z$/, "Z"),
  });
  assert.deepEqual(parseSearch("before:someday lunch"), { text: "before:someday lunch" }); // not a date: words
  assert.deepEqual(parseSearch("is:unread is:flagged"), { notKeyword: "$seen", hasKeyword: "$flagged" });
  assert.deepEqual(parseSearch(""), {});
});

test("address fields split on commas outside quotes", () => {
  assert.deepEqual(parseAddresses('Ann <a@x.test>, b@y.test; "Doe, Jo" <jo@z.test>'), [
    { name: "Ann", email: "a@x.test" },
    { name: null, email: "b@y.test" },
    { name: "Doe, Jo", email: "jo@z.test" },
  ]);
  assert.deepEqual(parseAddresses(" , "), []);
  assert.equal(validAddress({ email: "a@x.test" }), true);
  assert.equal(validAddress({ email: "not an address" }), false);
});

test("addresses round-trip through the field", () => {
  for (const a of [{ name: "Doe, Jo", email: "jo@z.test" }, { name: "Ann", email: "a@x.test" }, { name: null, email: "b@y.test" }]) {
    assert.deepEqual(parseAddresses(addrText(a)), [a]);
  }
});

test("sizes read like a person writes them", () => {
  assert.equal(fmtBytes(0), "0 B");
  assert.equal(fmtBytes(2400), "2.3 KB");
  assert.equal(fmtBytes(300 * 1024), "300 KB");
  assert.equal(fmtBytes(5 * 1024 ** 3), "5.0 GB");
});

test("address completion works for every address of a field, not only the first", () => {
  const people = ["Bob <bob@example.test>", "Carol <carol@example.test>", "dora@outside.test"];
  assert.deepEqual(completions("", people), people);
  assert.deepEqual(completions("car", people), ["Carol <carol@example.test>"]);
  assert.deepEqual(completions("Bob <bob@example.test>, ", people),
    ["Bob <bob@example.test>, Carol <carol@example.test>", "Bob <bob@example.test>, dora@outside.test"]);
  assert.deepEqual(completions("bob@example.test; DOR", people), ["bob@example.test; dora@outside.test"]);
  assert.deepEqual(completions('"Doe, Jo', people), []); // the comma is inside a quoted name
});
