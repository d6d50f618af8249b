import { Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import { Construct } from 'constructs';

export interface SyncScheduleProps {
  /** The `sync` function (reserved concurrency 1). */
  readonly syncFunction: lambda.Function;
}

/**
 * Invokes `sync` every minute (the smallest rate EventBridge Scheduler offers).
 *
 * A tick that finds the previous drain still running is throttled by `sync`'s reserved
 * concurrency of 1 and then dropped after a minute (its async event age), instead of queueing up
 * behind it: the next tick replaces it, and the running drain already covers the work.
 */
export class SyncSchedule extends Construct {
  readonly schedule: scheduler.Schedule;
  /** The role the scheduler invokes `sync` with. */
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: SyncScheduleProps) {
    super(scope, id);
    props.syncFunction.configureAsyncInvoke({
      maxEventAge: Duration.minutes(1),
      retryAttempts: 0,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
      description: 'EventBridge Scheduler: invokes Spillway sync',
    });
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'Spillway: drain the buffer into the database',
      schedule: scheduler.ScheduleExpression.rate(Duration.minutes(1)),
      target: new targets.LambdaInvoke(props.syncFunction, {
        // A missed tick needs no retry: the next one comes within a minute.
        retryAttempts: 0,
        maxEventAge: Duration.minutes(1),
        role: this.role,
      }),
    });
  }
}
