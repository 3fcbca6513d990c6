// The node's HTTP API, from the page: a Sign-In with Ethereum session (the node writes the EIP-4361
// message, the wallet signs it) and the uploads it authorizes, with progress; the read routes.

export class NodeError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function detailOf(status, body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((item) => item.msg).join("; ");
  return `the node answered ${status}`;
}

export class Node {
  constructor(base = "") {
    this.base = base;
    this.session = null; // { token, address, expires_at }
  }

  async json(method, path, body, headers = {}) {
    const response = await fetch(this.base + path, {
      method, headers: { ...(body ? { "content-type": "application/json" } : {}), ...headers },
      body: body ? JSON.stringify(body) : undefined,
    });
    const parsed = await response.json().catch(() => null);
    if (response.status === 401) this.session = null; // expired, or the node restarted: sign in again next time
    if (!response.ok) throw new NodeError(response.status, detailOf(response.status, parsed));
    return parsed;
  }

  /** A session for `address`, signing the node's message with `sign(message)` (the wallet's personal_sign). */
  async signIn(address, sign) {
    if (this.session && this.session.address.toLowerCase() === address.toLowerCase()
        && this.session.expires_at * 1000 > Date.now() + 60_000) return this.session;
    const challenge = await this.json("POST", "/v1/auth/challenge", { address });
    const signature = await sign(challenge.message);
    this.session = await this.json("POST", "/v1/auth/session", { nonce: challenge.nonce, signature });
    return this.session;
  }

  /** POSTs `form` to an upload route with the session; `onProgress(sent, total)` as the bytes go. */
  upload(path, form, onProgress) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", this.base + path);
      if (this.session) request.setRequestHeader("Authorization", `Bearer ${this.session.token}`);
      request.responseType = "json";
      request.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress?.(event.loaded, event.total);
      };
      request.onload = () => {
        if (request.status >= 200 && request.status < 300) resolve(request.response);
        else {
          if (request.status === 401) this.session = null;
          reject(new NodeError(request.status, detailOf(request.status, request.response)));
        }
      };
      request.onerror = () => reject(new NodeError(0, "the upload did not reach the node"));
      request.send(form);
    });
  }

  spec(body) {
    return this.json("POST", "/v1/uploads/spec", body, { Authorization: `Bearer ${this.session?.token ?? ""}` });
  }

  group(body) {
    return this.json("POST", "/v1/uploads/group", body, { Authorization: `Bearer ${this.session?.token ?? ""}` });
  }

  async bytes(cid) {
    const response = await fetch(`${this.base}/ipfs/${cid}`, { headers: { Accept: "application/vnd.ipld.raw" } });
    if (!response.ok) throw new NodeError(response.status, `the node has no ${cid}`);
    return new Uint8Array(await response.arrayBuffer());
  }

  async file(cid) {
    const response = await fetch(`${this.base}/ipfs/${cid}`);
    if (!response.ok) throw new NodeError(response.status, `the node has no ${cid}`);
    return new Uint8Array(await response.arrayBuffer());
  }

  prices(task, numTasks) {
    return this.json("GET", `/v1/prices?task=${encodeURIComponent(task)}&num_tasks=${numTasks}`);
  }

  job(jobId) {
    return this.json("GET", `/v1/jobs/${jobId}`);
  }
}
