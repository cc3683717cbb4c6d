// "Export my data" and Admin → Users → Export: ask the server for a download URL (POST with the
// CSRF token), then let the browser save the zip itself — it streams to disk, never into memory here.
import { api } from "./api.js";

export async function startExport(path) {
  const { url } = await api(path, { method: "POST" });
  const a = document.createElement("a");
  a.href = url;
  a.download = "";
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
}
