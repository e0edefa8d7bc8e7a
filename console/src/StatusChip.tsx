import type { ReactNode } from 'react';

/** Status values a chip can show: a command's status, or the console's own states. */
export type ChipStatus =
  | 'SENDING'
  | 'PENDING'
  | 'DELIVERED'
  | 'EXECUTED'
  | 'FAILED'
  | 'EXPIRED'
  | 'ERROR';

/**
 * A command status chip. Its text is exactly the status (the colour only repeats it) and
 * `data-status` carries the same value for tests and styles.
 */
export function StatusChip(props: { status: ChipStatus; testId?: string; title?: string }): ReactNode {
  return (
    <span
      className="chip chip-cmd"
      data-status={props.status}
      data-testid={props.testId}
      title={props.title}
    >
      {props.status}
    </span>
  );
}
