/**
 * The proxy's routing table: longest-prefix match by whole path segment, pure and synchronous.
 *
 * A trie of Maps keyed by segment, so a lookup costs one Map probe per segment of the request
 * path whatever the number of routes, and segments named like Object properties (`__proto__`,
 * `constructor`) are ordinary keys. `/user/ab` never matches `/user/abc`; a trailing slash is
 * ignored, as in configurable-http-proxy.
 */

/**
 * `/foo/bar/`, `foo/bar` and `//foo/bar//` -> `/foo/bar`; the root stays `/` (CHP's trimPrefix).
 * Leading and trailing slashes go as the trie ignores them, so one route never has two names
 * (two store records, one of which would come back after the other was deleted).
 */
export function cleanPath(path: string): string {
  let start = 0;
  let end = path.length;
  while (start < end && path.charCodeAt(start) === 47 /* / */) start++;
  while (end > start && path.charCodeAt(end - 1) === 47) end--;
  return start === 1 && end === path.length ? path : '/' + path.slice(start, end);
}

export interface RouteMatch<T> {
  /** The route's own (clean) path, e.g. `/user/abc`. */
  readonly prefix: string;
  readonly value: T;
}

/**
 * A trie node is also the route stored at it, so a route costs one object beside its value: at
 * 100,000 routes a separate match record and a by-path index were about 70 bytes a route.
 */
interface Node<T> {
  children: Map<string, Node<T>> | undefined;
  /** The route's clean path; '' while no route is stored here. */
  prefix: string;
  value: T | undefined;
}

function newNode<T>(): Node<T> {
  return { children: undefined, prefix: '', value: undefined };
}

function isRoute<T>(node: Node<T>): node is Node<T> & RouteMatch<T> {
  return node.value !== undefined;
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

/** Routes are values other than undefined: undefined marks a node that holds none. */
export class RouteTable<T extends NonNullable<unknown>> {
  private readonly root: Node<T> = newNode<T>();
  private count = 0;

  get size(): number {
    return this.count;
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
    if (!isRoute(node)) this.count++;
    node.prefix = prefix;
    node.value = value;
  }

  /** The node at exactly `path` (already clean), if the trie has one. */
  private find(prefix: string): Node<T> | undefined {
    let node: Node<T> | undefined = this.root;
    forEachSegment(prefix, (segment) => {
      node = node!.children?.get(segment);
      return node !== undefined;
    });
    return node;
  }

  /** The route stored at exactly `path` (after cleaning), if any. */
  get(path: string): T | undefined {
    return this.find(cleanPath(path))?.value;
  }

  has(path: string): boolean {
    return this.get(path) !== undefined;
  }

  /** Removes the route at `path`; true when there was one. Empty branches are pruned. */
  delete(path: string): boolean {
    const prefix = cleanPath(path);
    const trail: Array<[Node<T>, string]> = [];
    let node: Node<T> | undefined = this.root;
    forEachSegment(prefix, (segment) => {
      trail.push([node!, segment]);
      node = node!.children?.get(segment);
      return node !== undefined;
    });
    if (node === undefined || !isRoute(node)) return false;
    this.count--;
    (node as Node<T>).prefix = '';
    (node as Node<T>).value = undefined;
    // Prune nodes left with neither a route nor children, from the leaf up.
    for (let i = trail.length - 1; i >= 0; i--) {
      const [parent, segment] = trail[i]!;
      const child = parent.children!.get(segment)!;
      if (isRoute(child) || (child.children && child.children.size > 0)) break;
      parent.children!.delete(segment);
    }
    return true;
  }

  /** The route with the longest prefix of `path` by whole segments, or undefined. */
  match(path: string): RouteMatch<T> | undefined {
    let node: Node<T> | undefined = this.root;
    let best = isRoute(node) ? node : undefined;
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
      if (isRoute(node)) best = node;
      start = slash + 1;
    }
    return best;
  }

  /**
   * Every route, a parent before the routes under it, siblings in the order they were first added
   * (so a flat table such as `/user/<id>` lists in insertion order, as CHP does).
   */
  *entries(): IterableIterator<RouteMatch<T>> {
    // Depth-first with an explicit stack: a path may nest a thousand segments deep.
    const stack: Array<Iterator<Node<T>>> = [[this.root].values()];
    while (stack.length > 0) {
      const next = stack[stack.length - 1]!.next();
      if (next.done) {
        stack.pop();
        continue;
      }
      const node = next.value;
      if (isRoute(node)) yield node;
      if (node.children) stack.push(node.children.values());
    }
  }

  clear(): void {
    this.root.children = undefined;
    this.root.prefix = '';
    this.root.value = undefined;
    this.count = 0;
  }
}
