// The REST API from the browser: session cookie, CSRF header, JSON errors.
// Every failure becomes an ApiError whose message is the server's "detail".

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
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

// options: {method, json, form}; json is sent as a JSON body, form as multipart.
export async function api(path, { method = "GET", json, form } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
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
    throw new ApiError(errorMessage(data, response.status), response.status);
  }
  return data;
}

// Lists may come bare or paginated ({results: [...]}).
export function asList(data) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data.results)) return data.results;
  return [];
}

export const endpoints = {
  health: () => "/api/health/",
  projects: () => "/api/projects/",
  project: (id) => `/api/projects/${id}/`,
  projectMembers: (id) => `/api/projects/${id}/members/`,
  projectMember: (id, username) => `/api/projects/${id}/members/${encodeURIComponent(username)}/`,
  projectLeave: (id) => `/api/projects/${id}/leave/`,
  projectImages: (id) => `/api/projects/${id}/images/`,
  projectExport: (id) => `/api/projects/${id}/export/?format=coco`,
  image: (id) => `/api/images/${id}/`,
  imageDisplay: (id) => `/api/images/${id}/display.png`,
  imageInstances: (id) => `/api/images/${id}/instances/`,
  instance: (id) => `/api/instances/${id}/`,
};
