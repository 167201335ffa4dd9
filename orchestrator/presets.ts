/**
 * App presets: what a pool of one kind of web app needs besides its image, so a new pool is three
 * lines of config (`{"preset": "shiny", "image": "...", "size": 2}`). Explicit settings win.
 *
 * - jupyter: Jupyter Notebook/Server that runs under its base path `/user/<id>/`; busy kernels are
 *   asked for through its REST API.
 * - shiny: R Shiny (and most dashboards), which only run under `/`: the proxy strips the prefix.
 * - generic: any other web app served at `/` on the container port: the image's own command.
 */
import type { ActivityApi } from './app-activity.js';

export const DEFAULT_IMAGE = 'nbpool/jupyter:latest';
/**
 * Jupyter 6.4 with its XSRF check on, also inside a publisher's iframe on another site. Its `_xsrf`
 * cookie sets no SameSite, so a browser would drop it in a cross-site frame and every POST (new
 * notebook, start kernel) would fail with 403; when the visitor comes over HTTPS (TLS at the proxy,
 * or a --trusted-proxy front saying so) the proxy adds `SameSite=None; Secure; Partitioned` to such
 * cookies (proxy/response-rewrite.ts), which browsers keep in third-party frames. Over plain HTTP
 * cross-site embedding needs HTTPS (the proxy says so at start).
 */
export const DEFAULT_COMMAND =
  'jupyter-notebook --no-browser --allow-root --ip=0.0.0.0 --port={port} --NotebookApp.base_url={base_path} --NotebookApp.token={token}';

export const PRESET_NAMES = ['jupyter', 'shiny', 'generic'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export interface AppPreset {
  /** Image used when the pool names none; generic has none (the pool must name one). */
  image?: string;
  /** Command with placeholders {base_path} {port} {ip} {token}; '' runs the image's own command. */
  command: string;
  /** Path inside the container a visitor lands on when the request names none. */
  redirectUri: string;
  /** Path that must answer before a container is warm: under the base path, or under / with stripPrefix. */
  probePath: string;
  /** The app cannot run under /user/<id>/: the proxy sends `/user/<id>/x` as `/x` (route data `strip_prefix`). */
  stripPrefix: boolean;
  /** What visitors are told they get, on the loading and waiting pages. */
  noun: 'notebook' | 'app';
  /** How to ask the app whether it is busy before culling it as idle (app-activity.ts); none: never asked. */
  activity?: ActivityApi;
  /** The app's own periodic requests, which are not a person's activity: the route's `activity_ignore`. */
  activityIgnore: readonly string[];
}

/**
 * What an open, untouched Jupyter Notebook 6.4 tab sends (nbpool/jupyter, watched in Chromium):
 * - the tree page, every 60 s while its window has focus: `GET api/sessions?_=<n>`,
 *   `GET api/terminals?_=<n>` and `GET api/contents[/<dir>]?type=directory&_=<n>` (the same three
 *   again whenever the window gets focus);
 * - a notebook page: nothing periodic over HTTP (its autosave, every 120 s, saves only when the
 *   notebook changed: a person's edit, or once after a new notebook's kernel metadata is filled in);
 *   on its kernel WebSocket one `kernel_info_request` when it connects, then no data frames at all,
 *   only the pongs answering the server's pings every 30 s, which the proxy never counts.
 * So only the tree page's three polls are named. The cost: a visitor who only browses folders in
 * the tree (the same `api/contents` request as the poll) is not seen; opening anything is.
 */
const JUPYTER_POLLS = ['^/api/sessions(\\?|$)', '^/api/terminals(\\?|$)', '^/api/contents(/[^?]*)?\\?(.*&)?type=directory(&|$)'];

export const PRESETS: Record<PresetName, AppPreset> = {
  jupyter: { image: DEFAULT_IMAGE, command: DEFAULT_COMMAND, redirectUri: '/tree', probePath: 'api', stripPrefix: false, noun: 'notebook', activity: 'jupyter', activityIgnore: JUPYTER_POLLS },
  shiny: { image: 'nbpool/shiny:latest', command: '', redirectUri: '/', probePath: '', stripPrefix: true, noun: 'app', activityIgnore: [] },
  generic: { command: '', redirectUri: '/', probePath: '', stripPrefix: true, noun: 'app', activityIgnore: [] },
};

export function isPresetName(name: string): name is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(name);
}
