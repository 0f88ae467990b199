import { ApiProperty } from '@nestjs/swagger';
import type { ChainState, IntegrityReport } from '@keypin/shared';

/** One hash chain's state, for the OpenAPI document. */
export class ChainStateView implements ChainState {
  @ApiProperty({ description: 'Every sealed record from the latest checkpoint to the head verified' })
  ok!: boolean;
  @ApiProperty({ description: 'Records verified before the first failure (all of them when ok)' })
  checked!: number;
  @ApiProperty({ description: 'The last seq the sealer assigned (0 for an empty chain)' })
  head_seq!: number;
  @ApiProperty({
    pattern: '^[0-9a-f]{64}$',
    description: 'The hash of record head_seq (64 zeros for an empty chain): note it to anchor the chain',
  })
  head_hash!: string;
  @ApiProperty({
    type: Number,
    nullable: true,
    description: 'The first seq that fails: a changed, missing or inserted record; null when ok',
  })
  first_bad_seq!: number | null;
  @ApiProperty({
    type: Number,
    nullable: true,
    description:
      'Verification starts after this checkpoint (records up to it were removed by retention); null: from seq 1',
  })
  checkpoint_seq!: number | null;
  @ApiProperty({ description: 'Records written but not sealed yet (sealed within seconds)' })
  unsealed!: number;
}

export class IntegrityReportView implements IntegrityReport {
  @ApiProperty({ type: ChainStateView }) intercepts!: ChainStateView;
  @ApiProperty({ type: ChainStateView }) audit!: ChainStateView;
  @ApiProperty({ format: 'date-time' }) checked_at!: string;
}
