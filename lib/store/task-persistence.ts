/**
 * The queue's persistence on a {@link JsonStore}: one document per task under `tasks/`.
 * @module
 */
import { TaskRecordSchema, type TaskRecord } from '../task/types.js';
import type { TaskPersistence } from '../task/persistence.js';
import { StoreCorruptError } from './errors.js';
import type { JsonStore } from './store.js';

/**
 * Task records in a {@link JsonStore} (`<dir>/<prefix>/<taskId>.json`), written durably on
 * every transition. Pass it to `new TaskQueue({ persistence })`.
 */
export class StoreTaskPersistence implements TaskPersistence {
  readonly #store: JsonStore;
  readonly #prefix: string;
  readonly #onCorrupt: (err: StoreCorruptError) => void;

  /**
   * Task records under `<prefix>/` in `store`.
   * @param store the store
   * @param options `prefix` (default `tasks`); `onCorrupt` hears of task files that were moved aside at load.
   */
  constructor(store: JsonStore, options: { prefix?: string; onCorrupt?: (err: StoreCorruptError) => void } = {}) {
    this.#store = store;
    this.#prefix = options.prefix ?? 'tasks';
    this.#onCorrupt = options.onCorrupt ?? (() => {});
  }

  /** Writes the record durably. */
  async save(task: TaskRecord): Promise<void> {
    await this.#store.write(`${this.#prefix}/${task.id}`, TaskRecordSchema, task);
  }

  /** Reads every task record; corrupt ones are moved aside and reported to `onCorrupt`. */
  async loadAll(): Promise<TaskRecord[]> {
    const keys = await this.#store.list(this.#prefix);
    const out: Array<TaskRecord | undefined> = new Array(keys.length);
    let next = 0;
    // A few reads in flight at once: start-up with many recorded tasks is I/O-bound.
    const worker = async () => {
      while (next < keys.length) {
        const i = next++;
        try {
          out[i] = await this.#store.read(keys[i]!, TaskRecordSchema);
        } catch (e) {
          if (e instanceof StoreCorruptError) this.#onCorrupt(e);
          else throw e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, keys.length) }, worker));
    return out.filter((r): r is TaskRecord => r !== undefined);
  }

  /** Deletes a task's record. */
  async remove(id: string): Promise<void> {
    await this.#store.delete(`${this.#prefix}/${id}`);
  }
}
