// The server from the browser: every URL of the REST API (and the image's
// WebSocket) is written here once, in `endpoints`; no other module builds one.
// api() sends a request with the session cookie and the CSRF header, and
// turns every failure into an ApiError whose message is the server's "detail".

export class ApiError extends Error {
  constructor(message, status, body = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body; // the answer's JSON, when it had one
  }
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

// A readable message from DRF's error bodies: {"detail": ...} or {"field": ["..."]}.
function errorMessage(body, status) {
  if (body && typeof body === "object") {
    if (typeof body.detail === "string") return body.detail;
    const parts = [];
    for (const [field, value] of Object.entries(body)) {
      const text = Array.isArray(value) ? value.join(" ") : String(value);
      parts.push(field === "non_field_errors" || field === "detail" ? text : `${field}: ${text}`);
    }
    if (parts.length) return parts.join("; ");
  }
  return `Request failed (HTTP ${status})`;
}

// options: {method, json, form, csv}; json is sent as a JSON body, form as
// multipart, csv (a string) as text/csv.
export async function api(path, { method = "GET", json, form, csv } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  } else if (csv !== undefined) {
    headers["Content-Type"] = "text/csv; charset=utf-8";
    body = csv;
  }
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(`Network error: ${err.message}`, 0);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    if (response.status === 413 && !data?.detail) throw new ApiError("The upload is too large.", 413);
    throw new ApiError(errorMessage(data, response.status), response.status, data);
  }
  return data;
}

// Lists may come bare or paginated ({results: [...]}).
export function asList(data) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data.results)) return data.results;
  return [];
}

// fetch -> {status, body}, never throwing; status 0 when the network failed
// (no answer). For the instance store's save queue, which decides itself what
// each status means (retry, conflict, refusal).
export async function httpRequest(path, { method = "GET", json } = {}) {
  const headers = { Accept: "application/json" };
  if (json !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  try {
    const response = await fetch(path, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      credentials: "same-origin",
    });
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    return { status: response.status, body };
  } catch {
    return { status: 0, body: null };
  }
}

// Grouped by what they are about; docs/api.md describes each.
export const endpoints = {
  health: () => "/api/health/",
  models: (projectId) => (projectId ? `/api/models/?project=${projectId}` : "/api/models/"),

  projects: () => "/api/projects/",
  project: (id) => `/api/projects/${id}/`,
  projectMembers: (id) => `/api/projects/${id}/members/`,
  projectMember: (id, username) => `/api/projects/${id}/members/${encodeURIComponent(username)}/`,
  projectMembersBulk: (id) => `/api/projects/${id}/members/bulk/`,
  projectInvitations: (id) => `/api/projects/${id}/invitations/`,
  projectInvitation: (id, code) => `/api/projects/${id}/invitations/${encodeURIComponent(code)}/`,
  projectLabels: (id) => `/api/projects/${id}/labels/`,
  label: (id) => `/api/labels/${id}/`,
  labelMerge: (id, targetId) => `/api/labels/${id}/?merge_into=${targetId}`,
  projectLeave: (id) => `/api/projects/${id}/leave/`,
  projectImages: (id) => `/api/projects/${id}/images/`,
  projectExport: (id) => `/api/projects/${id}/export/?format=coco`,
  projectExports: (id) => `/api/projects/${id}/exports/`,
  exportJob: (id) => `/api/exports/${id}/`,
  projectSplits: (id) => `/api/projects/${id}/splits/`,
  projectImports: (id) => `/api/projects/${id}/imports/`,
  projectDisplay: (id) => `/api/projects/${id}/display/`,
  projectChannelMapping: (id) => `/api/projects/${id}/channel-mapping/`,
  projectQuality: (id) => `/api/projects/${id}/quality/`,
  projectQualityCsv: (id) => `/api/projects/${id}/quality/?format=csv`,
  projectEvaluations: (id) => `/api/projects/${id}/evaluations/`,
  evaluation: (id) => `/api/evaluations/${id}/`,
  projectTraining: (id) => `/api/projects/${id}/training/`,
  trainingJob: (id) => `/api/training/${id}/`,
  trainingCancel: (id) => `/api/training/${id}/cancel/`,
  projectModelVersions: (id) => `/api/projects/${id}/models/`,
  modelAdopt: (id, version) => `/api/projects/${id}/models/${version}/adopt/`,
  modelCheckpoint: (id, version) => `/api/projects/${id}/models/${version}/checkpoint/`,
  projectProposals: (id) => `/api/projects/${id}/proposals/`,
  proposalJob: (id) => `/api/proposal-jobs/${id}/`,

  image: (id) => `/api/images/${id}/`,
  imageDisplay: (id) => `/api/images/${id}/display.png`,
  imageInstances: (id) => `/api/images/${id}/instances/`,
  imageDeletedInstances: (id) => `/api/images/${id}/instances/?deleted=1`,
  imageProposals: (id) => `/api/images/${id}/proposals/`,
  imagePropagate: (id) => `/api/images/${id}/propagate/`,
  stack: (id) => `/api/stacks/${id}/`,
  // The WebSocket of the image's prompts (docs/api.md), on this page's host.
  imageSocket: (id) => {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${window.location.host}/ws/images/${id}/`;
  },

  instance: (id) => `/api/instances/${id}/`,
  // A delete carries the version it was made on (409 when stale).
  instanceAtVersion: (id, version) => `/api/instances/${id}/?version=${version}`,
  instanceRestore: (id) => `/api/instances/${id}/restore/`,
  instanceAccept: (id) => `/api/instances/${id}/accept/`,

  // The work queue: people's sets of an image (assignments) and their review.
  projectProgress: (id, { state = "", limit, offset = 0 } = {}) =>
    `/api/projects/${id}/progress/?${new URLSearchParams({ state, limit: String(limit ?? ""), offset: String(offset) })}`,
  queueNext: (id) => `/api/projects/${id}/queue/next/`,
  reviewNext: (id) => `/api/projects/${id}/review/next/`,
  assignment: (id) => `/api/assignments/${id}/`,
  // action: submit, skip, accept, return or activity.
  assignmentAction: (id, action) => `/api/assignments/${id}/${action}/`,
  // A set's instances (assignment null: the image's curated set).
  setInstances: (imageId, assignment, { deleted = false } = {}) => {
    const query = new URLSearchParams();
    if (deleted) query.set("deleted", "1");
    if (assignment) query.set("assignment", String(assignment));
    const text = query.toString();
    return `/api/images/${imageId}/instances/${text ? `?${text}` : ""}`;
  },
  // Quality control: how an image's sets agree, its consensus and dispute,
  // and a finished gold set's reference outlines.
  imageAgreement: (id) => `/api/images/${id}/agreement/`,
  imageConsensus: (id) => `/api/images/${id}/consensus/`,
  imageConsensusResolve: (id) => `/api/images/${id}/consensus/resolve/`,
  assignmentReference: (id) => `/api/assignments/${id}/reference/`,
  // The editor page on a person's set.
  editorPage: (imageId, assignment = null) => `/images/${imageId}/${assignment ? `?assignment=${assignment}` : ""}`,
  projectPage: (id) => `/projects/${id}/`,
};
