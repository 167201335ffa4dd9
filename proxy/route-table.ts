/**
 * The proxy's routing table: longest-prefix match by whole path segment, pure and synchronous.
 *
 * A trie of Maps keyed by segment, so a lookup costs one Map probe per segment of the request
 * path whatever the number of routes, and segments named like Object properties (`__proto__`,
 * `constructor`) are ordinary keys. `/user/ab` never matches `/user/abc`; a trailing slash is
 * ignored, as in configurable-http-proxy.
 */

/** `/foo/bar/` and `foo/bar` -> `/foo/bar`; the root stays `/` (CHP's trimPrefix). */
export function cleanPath(path: string): string {
  let p = path.length === 0 || path.charCodeAt(0) !== 47 /* / */ ? '/' + path : path;
  if (p.length > 1 && p.charCodeAt(p.length - 1) === 47) p = p.slice(0, -1);
  return p;
}

export interface RouteMatch<T> {
  /** The route's own (clean) path, e.g. `/user/abc`. */
  prefix: string;
  value: T;
}

interface Node<T> {
  children: Map<string, Node<T>> | undefined;
  route: RouteMatch<T> | undefined;
}

function newNode<T>(): Node<T> {
  return { children: undefined, route: undefined };
}

/**
 * Calls `visit` with each segment of `path` (leading and trailing slashes ignored), stopping when
 * it returns false. Segments between doubled slashes are empty strings, as CHP's trie sees them.
 */
function forEachSegment(path: string, visit: (segment: string) => boolean): void {
  let start = 0;
  let end = path.length;
  while (start < end && path.charCodeAt(start) === 47) start++;
  while (end > start && path.charCodeAt(end - 1) === 47) end--;
  while (start < end) {
    let slash = path.indexOf('/', start);
    if (slash === -1 || slash > end) slash = end;
    if (!visit(path.slice(start, slash))) return;
    start = slash + 1;
  }
}

export class RouteTable<T> {
  private readonly root: Node<T> = newNode<T>();
  /** Exact routes by clean path, for API reads and listing. */
  private readonly byPath = new Map<string, RouteMatch<T>>();

  get size(): number {
    return this.byPath.size;
  }

  /** Adds or replaces the route at `path`. */
  set(path: string, value: T): void {
    const prefix = cleanPath(path);
    let node = this.root;
    forEachSegment(prefix, (segment) => {
      node.children ??= new Map();
      let next = node.children.get(segment);
      if (!next) {
        next = newNode<T>();
        node.children.set(segment, next);
      }
      node = next;
      return true;
    });
    const route = { prefix, value };
    node.route = route;
    this.byPath.set(prefix, route);
  }

  /** The route stored at exactly `path` (after cleaning), if any. */
  get(path: string): T | undefined {
    return this.byPath.get(cleanPath(path))?.value;
  }

  has(path: string): boolean {
    return this.byPath.has(cleanPath(path));
  }

  /** Removes the route at `path`; true when there was one. Empty branches are pruned. */
  delete(path: string): boolean {
    const prefix = cleanPath(path);
    if (!this.byPath.delete(prefix)) return false;
    const trail: Array<[Node<T>, string]> = [];
    let node: Node<T> | undefined = this.root;
    forEachSegment(prefix, (segment) => {
      trail.push([node!, segment]);
      node = node!.children?.get(segment);
      return node !== undefined;
    });
    if (!node) return true;
    (node as Node<T>).route = undefined;
    // Prune nodes left with neither a route nor children, from the leaf up.
    for (let i = trail.length - 1; i >= 0; i--) {
      const [parent, segment] = trail[i]!;
      const child = parent.children!.get(segment)!;
      if (child.route || (child.children && child.children.size > 0)) break;
      parent.children!.delete(segment);
    }
    return true;
  }

  /** The route with the longest prefix of `path` by whole segments, or undefined. */
  match(path: string): RouteMatch<T> | undefined {
    let node: Node<T> | undefined = this.root;
    let best = node.route;
    let start = 0;
    let end = path.length;
    while (start < end && path.charCodeAt(start) === 47) start++;
    while (end > start && path.charCodeAt(end - 1) === 47) end--;
    while (start < end) {
      const children: Map<string, Node<T>> | undefined = node.children;
      if (!children) break;
      let slash = path.indexOf('/', start);
      if (slash === -1 || slash > end) slash = end;
      node = children.get(path.slice(start, slash));
      if (!node) break;
      if (node.route) best = node.route;
      start = slash + 1;
    }
    return best;
  }

  /** Every route, in insertion order. */
  entries(): IterableIterator<RouteMatch<T>> {
    return this.byPath.values();
  }

  clear(): void {
    this.root.children = undefined;
    this.root.route = undefined;
    this.byPath.clear();
  }
}
