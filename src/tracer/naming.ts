/**
 * Low-cardinality names from user-controlled input: routes from URL paths (templates,
 * then a cap), message names from a JSON field (a bounded set, then `other`), and URLs
 * with secrets removed before they are recorded anywhere.
 */
import type { Config } from '../config';
import type { JsonFieldReader } from './json-field';

export const OTHER = 'other';
const MAX_NAME_LENGTH = 64;
/** What a message name may be made of (a regex literal in a function is a new object per call). */
const NAME = /^[\w.:/-]+$/;

interface RouteTemplate {
  readonly template: string;
  readonly pattern: RegExp;
}

function compileTemplate(template: string): RouteTemplate {
  // `/rooms/:id` matches one segment per parameter; a trailing `*` matches the rest.
  const source = template
    .split('/')
    .map((segment) => {
      if (segment === '*') return '.*';
      if (segment.startsWith(':')) return '[^/]+';
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return { template, pattern: new RegExp(`^${source}/?$`) };
}

/** Turns a request URL into a bounded route and answers "is this route ignored?". */
export class RouteNamer {
  private readonly templates: readonly RouteTemplate[];
  private readonly ignored: readonly RouteTemplate[];
  private readonly known = new Set<string>();
  private readonly maxRoutes: number;

  constructor(config: Pick<Config, 'routes' | 'ignoreRoutes' | 'maxRoutes'>) {
    this.templates = config.routes.map(compileTemplate);
    this.ignored = config.ignoreRoutes.map(compileTemplate);
    this.maxRoutes = config.maxRoutes;
  }

  /** The route for a request URL (path without query), templated, else capped. */
  route(url: string | undefined): string {
    const path = pathOf(url);
    for (const t of this.templates) {
      if (t.pattern.test(path)) return t.template;
    }
    if (this.known.has(path)) return path;
    // Only raw paths count against the cap; beyond it, unknown paths collapse to `other`.
    if (this.known.size >= this.maxRoutes) return OTHER;
    this.known.add(path);
    return path;
  }

  isIgnored(route: string, url: string | undefined): boolean {
    if (this.ignored.length === 0) return false;
    const path = pathOf(url);
    return this.ignored.some((t) => t.template === route || t.pattern.test(path));
  }
}

function pathOf(url: string | undefined): string {
  if (!url) return '/';
  let end = url.length;
  const q = url.indexOf('?');
  if (q !== -1) end = q;
  const h = url.indexOf('#');
  if (h !== -1 && h < end) end = h;
  let path = url.slice(0, end);
  // Absolute-form request targets (`ws://host/path`) keep only the path.
  const scheme = path.indexOf('://');
  if (scheme !== -1) {
    const slash = path.indexOf('/', scheme + 3);
    path = slash === -1 ? '/' : path.slice(slash);
  }
  return path === '' ? '/' : path;
}

/** Extracts a message's name from a JSON field path, with a cap on distinct names. */
export class MessageNamer {
  private readonly path: readonly string[];
  private readonly maxNames: number;
  private readonly names = new Set<string>();
  /** Field values already named, by the reader's hash: a repeated name costs no string. */
  private readonly seen = new Map<number, { readonly raw: string; readonly name: string | undefined }>();

  constructor(config: Pick<Config, 'messageName' | 'maxMessageNames'>) {
    this.path = config.messageName;
    this.maxNames = config.maxMessageNames;
  }

  get enabled(): boolean {
    return this.path.length > 0;
  }

  /** The name at field `i` of the message `reader` has just read (see `name()`). */
  nameAt(reader: JsonFieldReader, i: number): string | undefined {
    const hash = reader.stringHash(i);
    if (hash !== -1) {
      const hit = this.seen.get(hash);
      if (hit !== undefined && reader.stringIs(i, hit.raw)) return hit.name;
    }
    const raw = reader.string(i);
    const name = this.name(raw);
    // A value's name never changes (the set of names only grows), so it can be remembered.
    if (hash !== -1 && raw !== undefined && this.seen.size < this.maxNames * 2) this.seen.set(hash, { raw, name });
    return name;
  }

  /**
   * The name a message's field value gives (`JsonFieldReader.string()` at `path`), or
   * undefined when it has none; `other` for names too long, oddly shaped, or past the cap.
   */
  name(value: string | undefined): string | undefined {
    if (typeof value !== 'string' || value.length === 0) return undefined;
    if (this.names.has(value)) return value;
    if (value.length > MAX_NAME_LENGTH || !NAME.test(value)) return OTHER;
    if (this.names.size >= this.maxNames) return OTHER;
    this.names.add(value);
    return value;
  }
}

/** Removes credentials and secret query parameters from URLs before they are recorded. */
export class UrlRedactor {
  private readonly secret: ReadonlySet<string>;

  constructor(params: readonly string[]) {
    this.secret = new Set(params.map((p) => p.toLowerCase()));
  }

  /** Redact a path+query (`/chat?token=x`) or an absolute URL (`wss://u:p@h/x?jwt=y`). */
  redact(url: string): string {
    let out = url;
    const scheme = out.indexOf('://');
    if (scheme !== -1) {
      const hostStart = scheme + 3;
      const pathStart = out.slice(hostStart).search(/[/?#]/);
      const authority = pathStart === -1 ? out.slice(hostStart) : out.slice(hostStart, hostStart + pathStart);
      const at = authority.lastIndexOf('@');
      if (at !== -1) {
        out = out.slice(0, hostStart) + 'REDACTED@' + out.slice(hostStart + at + 1);
      }
    }
    const q = out.indexOf('?');
    if (q === -1) return out;
    const hash = out.indexOf('#', q);
    const query = out.slice(q + 1, hash === -1 ? undefined : hash);
    const redacted = query
      .split('&')
      .map((pair) => {
        const eq = pair.indexOf('=');
        const rawName = eq === -1 ? pair : pair.slice(0, eq);
        let name = rawName;
        try {
          name = decodeURIComponent(rawName.replace(/\+/g, ' '));
        } catch {
          // Malformed escapes: compare the raw name.
        }
        return eq !== -1 && this.secret.has(name.toLowerCase()) ? `${rawName}=REDACTED` : pair;
      })
      .join('&');
    // Fragments never reach a server; drop them rather than risk a secret in one.
    return `${out.slice(0, q)}?${redacted}`;
  }
}

/** One query parameter's value from a request URL, or undefined. */
export function queryParam(url: string | undefined, name: string): string | undefined {
  if (!url || !name) return undefined;
  const q = url.indexOf('?');
  if (q === -1) return undefined;
  for (const pair of url.slice(q + 1).split('&')) {
    const eq = pair.indexOf('=');
    if (eq === -1 || pair.slice(0, eq) !== name) continue;
    try {
      return decodeURIComponent(pair.slice(eq + 1));
    } catch {
      return undefined;
    }
  }
  return undefined;
}
