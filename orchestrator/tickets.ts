/**
 * The loading-page visitors' tickets, kept by the public server. A visitor who finds no warm
 * container gets a place in the orchestrator's line (`joinLine`) and a page that long-polls
 * `/api/wait/<ticket>`; once their claim is made they collect it at `/spawn/...?ticket=<ticket>`.
 * The orchestrator knows waiters and claims; which of them sit behind a browser page, and when
 * that page was given up, is this desk's business.
 */
import type { ClaimContext } from './visitor.js';
import type { PlaceInLine } from './orchestrator.js';

export type TicketView =
  | { state: 'waiting'; position: number; waiting: number }
  | { state: 'ready'; url: string; visitorId: string }
  | { state: 'gone' };

/** Where tickets queue: the orchestrator. */
export interface WaitingLine {
  joinLine(pool: string | undefined, context: ClaimContext): PlaceInLine;
}

export interface TicketDeskOptions {
  /** A loading page that has not polled for this long is taken out of the line. */
  abandonMs: number;
  /** A served visitor's redirect is kept this long for them to collect. */
  keepMs: number;
  /** How often abandoned and collected tickets are swept. */
  sweepMs: number;
}

const DEFAULTS: TicketDeskOptions = { abandonMs: 20_000, keepMs: 60_000, sweepMs: 1000 };

interface Ticket {
  place: PlaceInLine;
  state: 'waiting' | 'ready' | 'gone';
  url?: string;
  visitorId?: string;
  lastSeen: number;
  /** Long polls open now: a page that polls is never abandoned. */
  openPolls: number;
  readyAt?: number;
  changed: Array<() => void>;
}

export class TicketDesk {
  private readonly tickets = new Map<string, Ticket>();
  private readonly options: TicketDeskOptions;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly line: WaitingLine,
    options: Partial<TicketDeskOptions> = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
    this.timer = setInterval(() => this.sweep(Date.now()), this.options.sweepMs);
    this.timer.unref();
  }

  /** Puts a visitor in line (the line's errors, full or draining, go to the caller) and returns their ticket. */
  open(pool: string | undefined, context: ClaimContext): string {
    const place = this.line.joinLine(pool, context);
    const ticket: Ticket = { place, state: 'waiting', lastSeen: Date.now(), openPolls: 0, changed: [] };
    this.tickets.set(place.id, ticket);
    place.claimed.then(
      (claim) => {
        ticket.url = claim.url;
        ticket.visitorId = claim.id;
        ticket.readyAt = Date.now();
        this.set(ticket, 'ready');
      },
      () => this.set(ticket, 'gone'),
    );
    return place.id;
  }

  view(id: string): TicketView {
    const ticket = this.tickets.get(id);
    if (!ticket || ticket.state === 'gone') return { state: 'gone' };
    ticket.lastSeen = Date.now();
    if (ticket.state === 'ready') return { state: 'ready', url: ticket.url!, visitorId: ticket.visitorId! };
    return { state: 'waiting', position: ticket.place.position(), waiting: ticket.place.waiting() };
  }

  /** Long poll: resolves when the ticket changes or after `maxMs`. */
  async wait(id: string, maxMs: number): Promise<TicketView> {
    const ticket = this.tickets.get(id);
    if (ticket?.state === 'waiting') {
      ticket.openPolls++;
      let notify!: () => void;
      const changed = new Promise<void>((r) => (notify = r));
      ticket.changed.push(notify);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([changed, new Promise<void>((r) => (timer = setTimeout(r, maxMs)))]);
      clearTimeout(timer);
      ticket.openPolls--;
      const index = ticket.changed.indexOf(notify);
      if (index !== -1) ticket.changed.splice(index, 1);
    }
    return this.view(id);
  }

  /** Given-up pages leave the line; collected or expired tickets are forgotten. */
  sweep(now: number): void {
    for (const [id, ticket] of this.tickets) {
      if (ticket.state === 'waiting' && ticket.openPolls === 0 && now - ticket.lastSeen > this.options.abandonMs) {
        ticket.place.leave();
        this.tickets.delete(id);
      } else if (ticket.state !== 'waiting' && now - (ticket.readyAt ?? ticket.lastSeen) > this.options.keepMs) {
        this.tickets.delete(id);
      }
    }
  }

  get size(): number {
    return this.tickets.size;
  }

  /** Every open long poll answers at once (the server is closing). */
  close(): void {
    clearInterval(this.timer);
    for (const ticket of this.tickets.values()) if (ticket.state === 'waiting') this.set(ticket, 'gone');
  }

  private set(ticket: Ticket, state: Ticket['state']): void {
    ticket.state = state;
    for (const notify of ticket.changed.splice(0)) notify();
  }
}
